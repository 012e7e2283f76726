"""Test suite for rnn-service."""
