"""The Reward & PPO page: the chain of a fine-tuned model and the wizards of its jobs."""
