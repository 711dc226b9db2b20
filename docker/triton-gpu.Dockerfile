# syntax=docker/dockerfile:1
# Triton for the GPU profile (`make export PROFILE=gpu`): the stock NGC image plus what the
# `<name>_gpu` python-backend models import: torch and torchvision (nvJPEG batched decode,
# geometry, the fp16 backbone with CUDA graphs), nvImageCodec and its nvJPEG (the hardware JPEG
# engines, when models.yaml's profiles.gpu.jpeg_decoder says nvimgcodec), onnx and onnx2torch
# (the backbone is converted from the version's model.onnx at load), Pillow (per-image CPU
# fallback decode) and numpy<2.
# Same NGC release as the chart's triton.image.tag; the chart runs it with triton.gpu.enabled.
#
#   docker build -f docker/triton-gpu.Dockerfile -t REGISTRY/visionserve/tritonserver:26.07-py3-visionserve-gpu docker/
#
# numpy stays below 2: the python backend's stub imports this interpreter's numpy, and with
# numpy 2 it corrupts every tensor it reads (BYTES in -> "unpack_from requires a buffer";
# UINT8 -> empty outputs), GPU or not. torch and torchvision are the versions the exporter
# checks parity with (pyproject.toml); PyPI's torch wheels carry their own CUDA libraries, so
# the node's driver must support that CUDA release (`make helm-lint` keeps these pins in step).
FROM nvcr.io/nvidia/tritonserver:26.07-py3

# Ubuntu's Python is "externally managed" (PEP 668): install into it on purpose. The check
# fails the build when a dependency pulled numpy 2 back in or nvJPEG's decoder is missing.
RUN PIP_BREAK_SYSTEM_PACKAGES=1 pip3 install --no-cache-dir --disable-pip-version-check \
        numpy==1.26.4 \
        nvidia-nvimgcodec-cu13==0.9.0.20 \
        nvidia-nvjpeg==13.3.2.43 \
        onnx==1.23.2 \
        onnx2torch==1.5.15 \
        pillow==13.0.0 \
        torch==2.15.0 \
        torchvision==0.29.2 \
    && python3 -c "import numpy, onnx, onnx2torch, PIL.Image, torch; from nvidia import nvimgcodec; from torchvision.io import decode_jpeg; assert int(numpy.__version__.split('.')[0]) < 2, numpy.__version__"

# triton-server, the non-root user the NGC image creates (uid 1000); the chart runs as it too.
USER 1000:1000
WORKDIR /opt/tritonserver
EXPOSE 8000 8001 8002
CMD ["tritonserver", "--model-repository=/models", "--model-control-mode=explicit"]
