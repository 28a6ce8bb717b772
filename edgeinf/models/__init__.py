"""Model builders (pure ONNX graph construction; no torch needed)."""
