"""Making one model of several: an adapter folded into its base (fold.py, PEFT), checkpoints averaged and
models merged linearly, by SLERP or by TIES (methods.py, mergekit; PEFT for adapter checkpoints)."""
