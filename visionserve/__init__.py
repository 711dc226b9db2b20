"""visionserve core: the model catalog, settings, errors and the CLI dispatcher."""

from visionserve.catalog import Catalog, ModelSpec, load_catalog
from visionserve.errors import VisionServeError

__all__ = ["Catalog", "ModelSpec", "VisionServeError", "load_catalog"]
__version__ = "0.1.0"
