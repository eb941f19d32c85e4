"""Generating candidate answers for labeling: prompts, models and seeded sampling (`kind: generate`)."""
