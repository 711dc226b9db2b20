"""Local runtime: the bundled tritonserver, its backend directory and Python-based backends."""

from serving.backend_dir import assemble_backend_directory
from serving.launcher import TritonServer, default_models, free_port

__all__ = ["TritonServer", "assemble_backend_directory", "default_models", "free_port"]
