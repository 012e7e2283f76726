"""Persistence: the model directory format, checkpoints (save/load a Model), file locks."""
