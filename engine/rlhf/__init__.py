"""Preference and RL training: reward models, DPO, GRPO and PPO (heavy: imported by jobs only)."""
