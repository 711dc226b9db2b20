# syntax=docker/dockerfile:1
# The visionserve gateway (BentoML): `visionserve gateway` on port 3000, endpoints /livez,
# /readyz and /metrics. Build from the project root (docker/gateway.Dockerfile.dockerignore
# keeps the venv, weights and tests out of the context):
#
#   docker build -f docker/gateway.Dockerfile -t REGISTRY/visionserve/gateway:0.1.0 .
#
# The same image runs the key CLI: `visionserve keys create --name NAME [--role admin]`.
FROM python:3.11-slim-bookworm AS build

WORKDIR /src
COPY . .
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check '.[gateway]'

FROM python:3.11-slim-bookworm

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VISIONSERVE_CATALOG=/opt/visionserve/models.yaml \
    HOME=/tmp \
    BENTOML_HOME=/tmp/bentoml \
    GATEWAY_STATE_DIR=/tmp/visionserve \
    GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=3000

RUN groupadd --system --gid 10001 visionserve \
    && useradd --system --uid 10001 --gid visionserve --home-dir /tmp --no-create-home visionserve

COPY --from=build /opt/venv /opt/venv
COPY models.yaml /opt/visionserve/models.yaml

USER 10001:10001
EXPOSE 3000
ENTRYPOINT ["visionserve"]
CMD ["gateway"]
