"""Exporters, the repository writer and version publishing.

Keras → SavedModel → ONNX; torchvision → TorchScript + ONNX. Entry point: ``visionserve export``.
"""
