"""Sources of the Python-based backends; serving/backend_dir.py copies them into a backend directory."""
