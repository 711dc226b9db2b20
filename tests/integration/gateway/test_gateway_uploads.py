"""Hostile uploads over HTTP: 400/413/415 with the error body, never a 500, never reaching Triton."""

from __future__ import annotations

import base64

import httpx
import pytest

from tests.fixtures.corpus import hostile_corpus
from tests.integration.gateway.conftest import GatewayProcess, ensemble_counts, unique_jpeg

pytestmark = pytest.mark.integration
MODEL = "resnet18"


def test_hostile_corpus_is_refused_before_triton(gateway: GatewayProcess, triton) -> None:
    corpus = hostile_corpus()
    assert len(corpus) >= 30
    before = ensemble_counts(triton.grpc_url, MODEL)
    results = []
    with gateway.client(gateway.key()) as http:
        for item in corpus:
            # declared as a JPEG whatever it is: the bytes decide
            r = http.post("/v1/classify", files={"image": (item.name, item.data, "image/jpeg")},
                          data={"model": MODEL})  # fmt: skip
            results.append((item, r))
        small = [i for i in corpus if len(i.data) < 2**20]
        for item in small:
            r = http.post("/v1/classify", json={"image_base64": base64.b64encode(item.data).decode(), "model": MODEL})
            results.append((item, r))
    after = ensemble_counts(triton.grpc_url, MODEL)
    for item, r in results:
        assert r.status_code == item.status, (item.name, r.status_code, r.text)
        error = r.json()["error"]
        assert set(error) == {"code", "message"} and error["message"]
        if item.code:
            assert error["code"] == item.code, (item.name, error)
        assert r.headers["x-content-type-options"] == "nosniff"
    assert after == before  # nothing reached Triton


def test_rejections_are_counted_and_recorded(gateway: GatewayProcess) -> None:
    key = gateway.key()
    with gateway.client(key) as http:
        r = http.post("/v1/classify", files={"image": ("x.jpg", b"%PDF-1.4 nope")}, data={"model": MODEL})
        history = http.get("/v1/history").json()["records"]
        metrics = httpx.get(gateway.url + "/metrics").text
    assert r.status_code == 415
    assert history[0]["status"] == "rejected" and history[0]["http_status"] == 415
    assert 'visionserve_gateway_uploads_rejected_total{code="unsupported_media_type"}' in metrics


def test_request_body_cap_declared_and_streamed(gateway: GatewayProcess) -> None:
    huge = b"\xff\xd8\xff" + b"\x00" * (35 * 2**20)
    with gateway.client(gateway.key()) as http:
        declared = http.post("/v1/classify", content=huge, headers={"content-type": "application/json"})

        def chunks():
            for _ in range(40):
                yield b"\x00" * 2**20

        streamed = http.post("/v1/classify", content=chunks(), headers={"content-type": "application/json"})
        fine = http.post("/v1/classify", files={"image": ("a.jpg", unique_jpeg())}, data={"model": MODEL})
    assert declared.status_code == 413 and declared.json()["error"]["code"] == "payload_too_large"
    assert streamed.status_code == 413
    assert fine.status_code == 200


def test_security_headers_and_request_id_on_every_response(gateway: GatewayProcess) -> None:
    key = gateway.key()
    with gateway.client(key) as http:
        responses = [
            http.post("/v1/classify", files={"image": ("a.jpg", unique_jpeg())}, headers={"X-Request-ID": "trace-42"}),
            http.post("/v1/classify", files={"image": ("a.bin", b"MZ...")}),
            http.get("/v1/models"),
            http.get("/v1/nothing-here"),
            http.get("/readyz"),
            http.get("/livez"),
            http.get("/metrics"),
            http.get("/docs.json"),
            http.get("/"),
            httpx.get(gateway.url + "/v1/models"),
        ]
    assert responses[0].headers["x-request-id"] == "trace-42"
    assert responses[0].json()["request_id"] == "trace-42"
    for r in responses:
        h = r.headers
        assert h["x-content-type-options"] == "nosniff", r.url
        assert h["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in h["content-security-policy"]
        assert h["strict-transport-security"].startswith("max-age=")
        assert len(h["x-request-id"]) >= 8
        assert "server" not in h and not any(k.startswith("x-bentoml") for k in h)
    for r in responses[:4] + responses[-1:]:  # every /v1 response, errors included
        assert {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"} <= set(r.headers), r.url
        assert r.headers["cache-control"] == "no-store"
    assert responses[3].status_code == 404 and responses[3].json()["error"]["code"] == "not_found"


def test_hostile_request_bodies_get_a_4xx_json_error(gateway: GatewayProcess) -> None:
    """Huge part headers, many parts, deep JSON, base64 garbage, wrong types, oversized bodies (issue 12)."""
    from tests.fixtures.corpus import hostile_requests

    with gateway.client(gateway.key()) as http:
        for case in hostile_requests():
            r = http.post("/v1/classify", content=case.body, headers={"content-type": case.content_type})
            assert r.status_code == case.status, (case.name, r.status_code, r.text[:300])
            error = r.json()["error"]
            assert error["message"], case.name
            if case.code:
                assert error["code"] == case.code, (case.name, error)
        assert http.get("/livez").status_code == 200


def test_costly_uploads_do_not_stall_the_event_loop(gateway: GatewayProcess) -> None:
    """Valid images cheap in bytes and dear to decode, in flight together: /livez keeps answering."""
    import threading
    import time

    from tests.fixtures.corpus import costly_valid, rle_bmp

    uploads = [*costly_valid(), ("rle8-1999.bmp", rle_bmp(1999, 1999)), ("rle8-1998.bmp", rle_bmp(1998, 1998))]
    statuses: list[int] = []
    key = gateway.key()

    def send(name: str, data: bytes) -> None:
        with gateway.client(key) as http:
            r = http.post("/v1/classify", files={"image": (name, data)}, data={"model": MODEL})
            statuses.append(r.status_code)

    threads = [threading.Thread(target=send, args=item) for item in uploads]
    for t in threads:
        t.start()
    worst = 0.0
    with httpx.Client(base_url=gateway.url, timeout=30) as probe:
        while any(t.is_alive() for t in threads):
            started = time.perf_counter()
            assert probe.get("/livez").status_code == 200
            worst = max(worst, time.perf_counter() - started)
            time.sleep(0.01)
    for t in threads:
        t.join()
    assert sorted(statuses) == [200] * len(uploads), statuses
    assert worst < 0.5, f"/livez took {worst * 1000:.0f} ms while costly uploads were checked"


def test_an_upload_over_its_decode_time_is_refused_and_the_gateway_goes_on(triton, tmp_path) -> None:
    """A check past GATEWAY_DECODE_TIMEOUT_S: its process is killed, the caller gets 413 decode_timeout."""
    from tests.fixtures.corpus import rle_bmp
    from tests.integration.gateway.conftest import running_gateway

    env = {"GATEWAY_DECODE_TIMEOUT_S": "0.2", "GATEWAY_DECODE_WORKERS": "1"}
    with running_gateway(tmp_path / "gw", triton.grpc_url, env=env) as gw:
        with gw.client(gw.key()) as http:
            slow = http.post("/v1/classify", files={"image": ("slow.bmp", rle_bmp(2000, 2000))}, data={"model": MODEL})
            fine = http.post("/v1/classify", files={"image": ("a.jpg", unique_jpeg((900, 700)))}, data={"model": MODEL})
            small = http.post("/v1/classify", files={"image": ("b.jpg", unique_jpeg())}, data={"model": MODEL})
    assert slow.status_code == 413 and slow.json()["error"]["code"] == "decode_timeout", slow.text
    assert fine.status_code == 200 and small.status_code == 200
