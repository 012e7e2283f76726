"""Training: reading and preparing a dataset per task, the training loop."""
