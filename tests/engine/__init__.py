"""Tests for the NumPy engine (rnn_engine)."""
