"""Validate rendered manifests against the Kubernetes OpenAPI schemas (kubernetes-validate).

Strict mode: an unknown field is an error, as the API server's strict field validation
(the default of ``kubectl apply`` since 1.27) would make it. Kinds that come from CRDs have
no schema in kubernetes-validate; the chart's own subsets under ``helm/schemas/`` cover them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate

__all__ = ["CRD_SCHEMAS", "validate_manifests"]

_SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"

#: (apiVersion, kind) -> schema file under helm/schemas/ for kinds defined by CRDs.
CRD_SCHEMAS: dict[tuple[str, str], str] = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "monitoring.coreos.com-v1-servicemonitor.json",
}


@cache
def _crd_validator(filename: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((_SCHEMA_DIR / filename).read_text())
    return jsonschema.Draft202012Validator(schema)


def _where(doc: dict[str, Any]) -> str:
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name', '?')}"


def _path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "<root>"


def validate_manifests(
    manifests: Iterable[tuple[str, dict[str, Any]]], kube_version: str, *, label: str = ""
) -> list[str]:
    """Problems of each manifest against the schemas of ``kube_version`` (e.g. ``"1.30.0"``).

    Args:
        manifests: (template path, parsed manifest) pairs, as :class:`helm.chart.Rendered` has.
        kube_version: Kubernetes version whose schemas apply.
        label: prefix for messages (the value set's name).

    Returns:
        One message per invalid manifest; empty when all are valid.
    """
    problems: list[str] = []
    prefix = f"{label}: " if label else ""
    for template, doc in manifests:
        key = (str(doc.get("apiVersion")), str(doc.get("kind")))
        try:
            if key in CRD_SCHEMAS:
                errors = sorted(_crd_validator(CRD_SCHEMAS[key]).iter_errors(doc), key=str)
                if errors:
                    raise jsonschema.ValidationError(f"{_path(errors[0])}: {errors[0].message}")
            else:
                kubernetes_validate.validate(doc, kube_version, strict=True)
        except kubernetes_validate.SchemaNotFoundError as exc:
            problems.append(f"{prefix}{template}: {_where(doc)}: {exc.message}")
        except jsonschema.ValidationError as exc:
            where = _path(exc) if exc.absolute_path else ""
            problems.append(
                f"{prefix}{template}: {_where(doc)}: {where + ': ' if where else ''}{exc.message}"
            )
    return problems
