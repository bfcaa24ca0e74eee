"""Training: pretraining of the mini model, the GRPO engine and the SEER stages."""
