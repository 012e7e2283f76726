"""Benchmarks that time the engine against PyTorch and onnxruntime in the same process."""
