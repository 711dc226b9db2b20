"""A real publish under load: within 1 s of version 2 being ready, no version-1 answer is served.

Version 2 of resnet18 is staged beside the repository (version 1's files, with the ONNX
backbone's classifier bias pushed towards one class, so its answers differ visibly),
committed atomically, and switched to on the live server with ``export.publish.switch_version``
while a client keeps asking the gateway about an image it has cached under version 1.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from client import TritonClient
from export.publish import TritonControl, switch_version
from serving.launcher import TritonServer
from tests.fixtures.versions import stage_copy
from tests.integration.gateway.conftest import own_triton_of, running_gateway, unique_jpeg
from visionserve.catalog import load_catalog

pytestmark = pytest.mark.integration
SPEC = load_catalog().get("resnet18")
FAVOURED = 7  # the class version 2 prefers for every image


@pytest.fixture
def live_triton(fresh_repository: Path, tmp_path: Path) -> Iterator[TritonServer]:
    with own_triton_of(fresh_repository, SPEC.name, tmp_path) as server:
        yield server


def test_no_stale_answer_survives_a_publish(live_triton: TritonServer, fresh_repository: Path, tmp_path: Path) -> None:
    image = unique_jpeg()
    with running_gateway(tmp_path / "gw", live_triton.grpc_url) as gw, gw.client(gw.key()) as http:
        first = http.post("/v1/classify", files={"image": ("a.jpg", image)}, data={"model": SPEC.name}).json()
        assert (first["version"], first["cached"]) == (1, False)
        assert http.post("/v1/classify", files={"image": ("a.jpg", image)},
                         data={"model": SPEC.name}).json()["cached"] is True  # fmt: skip

        answers: list[tuple[float, int, httpx.Response]] = []
        ready_at: list[float] = []
        stop = threading.Event()

        def hammer() -> None:
            with gw.client(http.headers["Authorization"].split()[1]) as h:
                while not stop.is_set():
                    sent = time.monotonic()
                    r = h.post("/v1/classify", files={"image": ("a.jpg", image)}, data={"model": SPEC.name})
                    answers.append((sent, r.status_code, r))

        def watch() -> None:
            with TritonClient(live_triton.grpc_url) as triton:
                while not stop.is_set() and not ready_at:
                    if triton.is_ready(SPEC.ensemble, 2):
                        ready_at.append(time.monotonic())
                    time.sleep(0.01)

        stage_copy(fresh_repository, SPEC, 2, favoured=FAVOURED)
        threads = [threading.Thread(target=hammer), threading.Thread(target=watch)]
        for t in threads:
            t.start()
        try:
            control = TritonControl(live_triton.grpc_url)
            switch_version(fresh_repository, SPEC, 2, control, log=lambda _msg: None)
            control.close()
            deadline = time.monotonic() + 30
            while not ready_at and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(2.0)  # keep asking well past the 1 s bound
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        assert ready_at, "version 2 never became ready"
        assert all(status == 200 for _, status, _ in answers), [s for _, s, _ in answers if s != 200]
        late = [r.json() for sent, _, r in answers if sent > ready_at[0] + 1.0]
        assert len(late) >= 5
        assert {a["version"] for a in late} == {2}
        first_v2 = next(r.json() for _, _, r in answers if r.json()["version"] == 2)
        assert first_v2["cached"] is False  # computed by version 2, not read from version 1's entry
        assert first_v2["predictions"][0]["index"] == FAVOURED != first["predictions"][0]["index"]
        models = {m["name"]: m for m in http.get("/v1/models").json()["models"]}
        assert models[SPEC.name]["served_version"] == 2
