"""Layers and their pieces: the module base, Linear/Embedding/Dropout, initialisers, losses."""
