"""The Pretrain page: the pretraining wizard and its run."""
