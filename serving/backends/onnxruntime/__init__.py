"""Python-based onnxruntime backend (copied into the backend directory as <dir>/onnxruntime/model.py)."""
