"""``model=committee`` and ``tta=hflip`` through the real gateway, against Triton's own answers.

The gateway must answer a committee request with the committee ensemble's top-k, a TTA request
with ``<model>_hflip``'s (one Triton request), cache the two apart, and say in the history row
which TTA answered. Bad values are 4xx with a JSON body naming the problem.
"""

from __future__ import annotations

import base64

import pytest

from client import TritonClient
from serving.launcher import TritonServer
from tests.integration.gateway.conftest import GatewayProcess, unique_jpeg
from visionserve.catalog import load_catalog

pytestmark = pytest.mark.integration

CATALOG = load_catalog()
MODEL = "resnet18"


def _top(triton: TritonServer, model: str, image: bytes) -> list[tuple[int, float]]:
    with TritonClient(triton.grpc_url) as client:
        return [(p.index, round(p.score, 5)) for p in client.classify(image, model, top_k=3).predictions]


def _got(body: dict) -> list[tuple[int, float]]:
    return [(p["index"], round(p["score"], 5)) for p in body["predictions"]]


def test_committee_is_a_model_of_the_gateway(gateway: GatewayProcess, triton: TritonServer) -> None:
    image = unique_jpeg()
    with gateway.client(gateway.key()) as http:
        models = {m["name"]: m for m in http.get("/v1/models").json()["models"]}
        r = http.post("/v1/classify", files={"image": ("a.jpg", image)}, data={"model": "committee", "top_k": "3"})
    committee = models["committee"]
    assert committee["ready"] and committee["members"] == pytest.approx(dict.fromkeys(CATALOG.names, 1 / 3))
    assert committee["gflops"] == pytest.approx(sum(models[n]["gflops"] for n in CATALOG.names))
    assert committee["tta"] == [] and models[MODEL]["tta"] == ["hflip"]
    assert r.status_code == 200, r.text
    assert r.json()["model"] == "committee" and r.json()["version"] == 1
    assert _got(r.json()) == _top(triton, "committee", image)
    assert _got(r.json()) != _top(triton, MODEL, image)


def test_tta_form_and_json_are_one_triton_request_cached_apart(gateway: GatewayProcess, triton: TritonServer) -> None:
    image = unique_jpeg()
    key = gateway.key()
    form = {"model": MODEL, "top_k": "3"}
    with gateway.client(key) as http:
        tta = http.post("/v1/classify", files={"image": ("a.jpg", image)}, data={**form, "tta": "hflip"})
        plain = http.post("/v1/classify", files={"image": ("a.jpg", image)}, data=form)
        again = http.post(
            "/v1/classify", json={"image_base64": base64.b64encode(image).decode(), "model": MODEL, "top_k": 3,
                                  "tta": "hflip"},
        )  # fmt: skip
        history = http.get("/v1/history", params={"limit": 3}).json()["records"]
    assert tta.status_code == 200, tta.text
    assert tta.json()["tta"] == "hflip" and tta.json()["cached"] is False
    assert _got(tta.json()) == _top(triton, CATALOG.get(MODEL).tta_ensemble("hflip"), image)
    assert plain.json()["tta"] is None and plain.json()["cached"] is False  # not the TTA answer's cache entry
    assert _got(plain.json()) == _top(triton, MODEL, image) != _got(tta.json())
    assert again.json()["cached"] is True and _got(again.json()) == _got(tta.json())
    assert [r["tta"] for r in history] == ["hflip", None, "hflip"]  # newest first


@pytest.mark.parametrize(
    ("fields", "status", "code"),
    [
        ({"model": MODEL, "tta": "vflip"}, 400, "invalid_request"),
        ({"model": "committee", "tta": "hflip"}, 400, "tta_unavailable"),
    ],
)
def test_bad_tta_is_a_clear_4xx(gateway: GatewayProcess, fields: dict, status: int, code: str) -> None:
    with gateway.client(gateway.key()) as http:
        r = http.post("/v1/classify", files={"image": ("a.jpg", unique_jpeg())}, data=fields)
    assert r.status_code == status and r.json()["error"]["code"] == code, r.text
    assert "tta" in r.json()["error"]["message"]
