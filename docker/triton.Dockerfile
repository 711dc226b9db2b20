# syntax=docker/dockerfile:1
# Triton for the visionserve ensembles: the stock NGC image plus what the python-backend
# preprocessing models import (Pillow, and simplejpeg for JPEG decoding; numpy is already there). Same tag as the chart's
# triton.image.tag; use it with triton.pythonPackages.install=false (no pip at pod start).
#
#   docker build -f docker/triton.Dockerfile -t REGISTRY/visionserve/tritonserver:26.07-py3-visionserve docker/
#
# NGC images after 25.02 carry no TensorFlow backend: the ensembles serve ONNX (models.yaml
# serve_format), which the onnxruntime backend of this image loads natively.
FROM nvcr.io/nvidia/tritonserver:26.07-py3

# Ubuntu's Python is "externally managed" (PEP 668): install into it on purpose.
RUN PIP_BREAK_SYSTEM_PACKAGES=1 pip3 install --no-cache-dir --disable-pip-version-check \
        pillow==13.0.0 \
        simplejpeg==1.9.0 \
    && python3 -c "import PIL.Image, numpy, simplejpeg"

# triton-server, the non-root user the NGC image creates (uid 1000); the chart runs as it too.
USER 1000:1000
WORKDIR /opt/tritonserver
EXPOSE 8000 8001 8002
CMD ["tritonserver", "--model-repository=/models", "--model-control-mode=explicit"]
