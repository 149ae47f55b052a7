"""The munet-serve server: the registry's only writer, serving every task's current path with ONNX Runtime."""
