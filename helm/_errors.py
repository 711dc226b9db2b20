"""Errors of the chart tooling, rooted at :class:`visionserve.errors.VisionServeError`."""

from __future__ import annotations

from visionserve.errors import VisionServeError

__all__ = ["ChartError", "SchemaError"]


class ChartError(VisionServeError):
    """The chart cannot be loaded or rendered, or a value set is invalid."""

    code = "chart"


class SchemaError(ChartError):
    """values.yaml and its ``## @param`` documentation disagree, or a value is undocumented."""

    code = "chart_schema"
