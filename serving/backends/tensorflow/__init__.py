"""Python-based tensorflow backend (copied into the backend directory as <dir>/tensorflow/model.py)."""
