"""A key's rate limit pays for decode work: costly images cost more tokens, refused before any decode."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from drills.hostile import rle8_bmp
from gateway.uploads import UploadPolicy, assess, sniff
from tests.integration.gateway.conftest import ensemble_counts, running_gateway, unique_jpeg

pytestmark = pytest.mark.integration
MODEL = "resnet18"
BURST = 21  # after the three requests below one token is left: the fourth is admitted, its decode refused


def _post(http: httpx.Client, data: bytes, name: str) -> httpx.Response:
    return http.post("/v1/classify", data={"model": MODEL}, files={"image": (name, data, "application/octet-stream")})


def test_a_costly_image_costs_its_decode_in_tokens_and_is_refused_before_triton_when_they_run_out(
    triton, tmp_path: Path
) -> None:
    costly, other = rle8_bmp(2000, 2000, shade=40), rle8_bmp(2000, 2000, shade=41)  # 4 MP in 9 KB each
    cost = assess(costly, sniff(costly, UploadPolicy()), UploadPolicy()).tokens(25.0, BURST)
    assert 10 < cost < BURST  # the settings below: 25 ms of estimated decode per token
    env = {"GATEWAY_RATE_PER_S": "0.01", "GATEWAY_RATE_BURST": str(BURST), "GATEWAY_DECODE_MS_PER_TOKEN": "25"}
    with running_gateway(tmp_path / "gw", triton.grpc_url, env=env) as gw, gw.client(gw.key()) as http:
        small = _post(http, unique_jpeg(), "small.jpg")
        big = _post(http, costly, "big.bmp")
        again = _post(http, costly, "big.bmp")  # a cache hit decodes nothing: one token
        before = ensemble_counts(triton.grpc_url, MODEL)
        refused = _post(http, other, "other.bmp")
        after = ensemble_counts(triton.grpc_url, MODEL)
    assert small.status_code == 200 and small.headers["x-ratelimit-remaining"] == str(BURST - 1)
    assert big.status_code == 200 and big.headers["x-ratelimit-remaining"] == str(BURST - 1 - cost)
    assert again.status_code == 200 and again.json()["cached"] is True
    assert again.headers["x-ratelimit-remaining"] == str(BURST - 2 - cost)
    assert refused.status_code == 429, refused.text
    error = refused.json()["error"]
    assert error["code"] == "rate_limited" and f"costs {cost} tokens" in error["message"]
    assert int(refused.headers["retry-after"]) >= 1
    assert after == before  # refused before Triton saw it
