"""Python-based pytorch backend (copied into the backend directory as <dir>/pytorch/model.py)."""
