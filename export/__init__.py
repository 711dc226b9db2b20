"""Exporters (Keras → SavedModel → ONNX; torchvision → TorchScript + ONNX), the repository
writer and version publishing. Entry point: ``visionserve export`` (``export.cli``)."""
