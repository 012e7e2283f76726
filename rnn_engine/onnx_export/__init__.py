"""ONNX export (the only engine package that imports onnx): layer stacks now, every model kind as it lands."""

from __future__ import annotations

from .builder import OPSET
from .recurrent import export_recurrent
from .save import save_onnx

__all__ = ["OPSET", "export_recurrent", "save_onnx"]
