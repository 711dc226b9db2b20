"""Tooling for the visionserve Helm chart in ``helm/visionserve/``.

No cluster, no ``helm`` binary and no Docker engine are needed: the chart is rendered and
linted with the Helm engine of ``helm-python-sdk``, manifests are checked with
``kubernetes-validate`` and checkov, and the Dockerfiles under ``docker/`` with hadolint.

``python -m helm.lint`` (``make helm-lint``) runs every check; ``python -m helm.schema``
regenerates ``values.schema.json`` from the ``## @param`` lines of ``values.yaml``.
"""

from helm._errors import ChartError, SchemaError

__all__ = ["ChartError", "SchemaError"]
