"""Render the chart offline, like ``helm template``, through helm-python-sdk's Helm engine.

The SDK's ``Chart.render`` takes the release name and namespace; the C library under it also
accepts ``kube_version`` and ``api_versions`` (what ``helm template --kube-version
--api-versions`` set as ``.Capabilities``), which the ServiceMonitor template needs. This
module passes them through the SDK's native call and keeps that in one place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import helm_python
import yaml
from helm_python import _native

from helm._errors import ChartError
from helm.schema import CHART_DIR

__all__ = [
    "DEFAULT_API_VERSIONS",
    "KUBE_VERSION",
    "NAMESPACE",
    "RELEASE",
    "Rendered",
    "ValueSet",
    "lint_chart",
    "load_values",
    "render",
    "value_sets",
]

#: The Kubernetes version the chart is rendered for and validated against.
KUBE_VERSION = "v1.30.0"
#: Release name and namespace of test renders (not "default": checkov flags that namespace).
RELEASE = "demo"
NAMESPACE = "visionserve"
#: Extra API groups the test cluster "has": the Prometheus operator's, so ServiceMonitors render.
DEFAULT_API_VERSIONS: tuple[str, ...] = ("monitoring.coreos.com/v1",)


@dataclass(frozen=True)
class ValueSet:
    """A named values file the chart must render cleanly with.

    Args:
        name: short name used in messages ("default", "gpu", ...).
        path: the values file, or None for the chart's defaults alone.
    """

    name: str
    path: Path | None = None

    def values(self) -> dict[str, Any]:
        return load_values(self.path) if self.path else {}


@dataclass
class Rendered:
    """The output of one render.

    Args:
        value_set: what was rendered.
        templates: template path -> rendered text (as Helm returns it, NOTES.txt included).
        manifests: every non-empty YAML document, parsed, with the template it came from.
    """

    value_set: ValueSet
    templates: dict[str, str]
    manifests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    @property
    def notes(self) -> str:
        return next((text for path, text in self.templates.items() if path.endswith("NOTES.txt")), "")

    def find(self, kind: str, component: str | None = None) -> list[dict[str, Any]]:
        """Manifests of ``kind`` (and of ``app.kubernetes.io/component`` when given)."""
        found = []
        for _, doc in self.manifests:
            labels = doc.get("metadata", {}).get("labels", {}) or {}
            if doc.get("kind") == kind and (
                component is None or labels.get("app.kubernetes.io/component") == component
            ):
                found.append(doc)
        return found

    def one(self, kind: str, component: str | None = None) -> dict[str, Any]:
        """The single manifest of ``kind`` / ``component``; ChartError when not exactly one."""
        found = self.find(kind, component)
        if len(found) != 1:
            raise ChartError(
                f"{self.value_set.name}: expected one {kind} {component or ''}, found {len(found)}"
            )
        return found[0]


def load_values(path: Path) -> dict[str, Any]:
    """A values file as a dict; ChartError names a file that is not a YAML mapping."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ChartError(f"{path}: cannot read values: {exc}") from None
    if not isinstance(data, dict):
        raise ChartError(f"{path}: a values file must be a mapping")
    return data


def value_sets(chart_dir: Path = CHART_DIR) -> list[ValueSet]:
    """The default values plus every ``ci/*-values.yaml`` of the chart."""
    sets = [ValueSet("default")]
    for path in sorted((chart_dir / "ci").glob("*-values.yaml")):
        sets.append(ValueSet(path.name.removesuffix("-values.yaml"), path))
    return sets


def render(
    values: dict[str, Any] | ValueSet | None = None,
    *,
    chart_dir: Path = CHART_DIR,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
    kube_version: str = KUBE_VERSION,
    api_versions: tuple[str, ...] = DEFAULT_API_VERSIONS,
) -> Rendered:
    """Render the chart offline; ChartError carries Helm's message (schema or template failure).

    Args:
        values: overrides (a dict or a ValueSet); the chart's defaults when None.
        chart_dir: the chart directory.
        release: release name (``.Release.Name``).
        namespace: release namespace.
        kube_version: ``.Capabilities.KubeVersion``.
        api_versions: extra ``.Capabilities.APIVersions`` (e.g. CRDs the cluster has).

    Returns:
        The rendered templates and their parsed manifests.
    """
    value_set = values if isinstance(values, ValueSet) else ValueSet("custom")
    overrides = value_set.values() if isinstance(values, ValueSet) else (values or {})
    opts = {
        "name": release,
        "namespace": namespace,
        "kube_version": kube_version,
        "api_versions": list(api_versions),
    }
    try:
        with helm_python.Chart.load(chart_dir) as chart:
            raw = _native.call_string("helm_render", chart._raw(), json.dumps(overrides), json.dumps(opts))
    except helm_python.HelmError as exc:
        raise ChartError(f"{value_set.name}: {exc}") from None
    except AttributeError as exc:  # the SDK's native layer moved: say so instead of a traceback
        raise ChartError(
            f"helm-python-sdk {helm_python.__version__} has no native helm_render call ({exc}); "
            "this module was written against 0.2.2"
        ) from None
    templates: dict[str, str] = json.loads(raw)
    rendered = Rendered(value_set, templates)
    for path, text in sorted(templates.items()):
        if not path.endswith((".yaml", ".yml")):
            continue
        try:
            docs = list(yaml.safe_load_all(text))
        except yaml.YAMLError as exc:
            raise ChartError(f"{value_set.name}: {path} renders invalid YAML: {exc}") from None
        for doc in docs:
            if doc is None:
                continue
            if not isinstance(doc, dict) or "kind" not in doc:
                raise ChartError(
                    f"{value_set.name}: {path} renders a document that is not a Kubernetes object"
                )
            rendered.manifests.append((path, doc))
    return rendered


def lint_chart(
    values: ValueSet, *, chart_dir: Path = CHART_DIR, kube_version: str = KUBE_VERSION
) -> list[str]:
    """``helm lint --strict`` for one value set: its findings of warning level or worse."""
    report = helm_python.lint(
        chart_dir, values.values(), strict=True, namespace=NAMESPACE, kube_version=kube_version
    )
    problems = [f"{values.name}: {err}" for err in report.get("errors") or []]
    for msg in report.get("messages") or []:
        if int(msg.get("severity", 0)) >= 2:
            problems.append(f"{values.name}: {msg.get('path', '')}: {msg.get('error', '')}")
    return problems
