"""Metric names and labels that dashboards and alerts rely on."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from gateway.metrics import GatewayMetrics


def test_every_metric_is_exposed_with_its_labels() -> None:
    registry = CollectorRegistry()
    m = GatewayMetrics(registry)
    m.request_seconds.labels("classify", "resnet18", "200", "true").observe(0.002)
    m.triton_seconds.labels("resnet18").observe(0.03)
    m.cache.labels("resnet18", "hit").inc()
    m.cache.labels("resnet18", "miss").inc(2)
    m.cache_errors.labels("cache_get").inc()
    m.triton_errors.labels("resnet18", "unavailable").inc()
    m.rate_limited.labels("key").inc()
    m.uploads_rejected.labels("polyglot").inc()
    m.history_rows.labels("written").inc(5)
    m.served_version.labels("resnet18").set(2)
    text = generate_latest(registry).decode()
    for needle in (
        'visionserve_gateway_request_seconds_bucket{cached="true",endpoint="classify",le="0.002",model="resnet18",'
        'status="200"} 1.0',
        'visionserve_gateway_cache_lookups_total{model="resnet18",result="miss"} 2.0',
        'visionserve_gateway_cache_errors_total{op="cache_get"} 1.0',
        'visionserve_gateway_triton_errors_total{kind="unavailable",model="resnet18"} 1.0',
        'visionserve_gateway_rate_limited_total{bucket="key"} 1.0',
        'visionserve_gateway_uploads_rejected_total{code="polyglot"} 1.0',
        'visionserve_gateway_history_rows_total{result="written"} 5.0',
        'visionserve_gateway_served_version{model="resnet18"} 2.0',
        "visionserve_gateway_triton_seconds_count",
    ):
        assert needle in text, needle
