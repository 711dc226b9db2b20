"""Safe releases on the real stack: tritonserver, a real gateway, its history, the real CLI.

Versions of resnet18 made here beside the exported version 1:
* v2 differs for real: its ONNX classifier bias favours class ``FAVOURED`` for every image;
* v3 is identical to v1 (the same weights and labels): its verdict must be ``promote``;
* v4 is v1 with its class labels shuffled (a broken canary): its verdict must be ``rollback``.

Each test starts and ends its own release on the module's Triton and gateway. Figures are
printed (run with ``-s``): the split accuracy, both verdicts with their statistics.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from client import TritonClient
from serving.launcher import TritonServer, default_models, free_ports
from tests.fixtures.versions import stage_copy
from tests.integration.gateway.conftest import GatewayProcess, unique_jpeg
from visionserve.catalog import load_catalog
from visionserve.release import read_labels
from visionserve.settings import PROJECT_ROOT

pytestmark = pytest.mark.integration
CATALOG = load_catalog()
SPEC = CATALOG.get("resnet18")
FAVOURED = 7


class Stack:
    """Triton (restartable on the same ports) and one gateway over a repository."""

    def __init__(self, repo: Path, directory: Path, redis_url: str) -> None:
        self.repo, self.directory, self.redis_url = repo, directory, redis_url
        self.ports = free_ports(3)
        self.triton: TritonServer | None = None
        self.gateway: GatewayProcess | None = None

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.ports[1]}"

    def start_triton(self) -> None:
        http_port, grpc_port, metrics_port = self.ports
        self.triton = TritonServer(
            self.repo, http_port=http_port, grpc_port=grpc_port, metrics_port=metrics_port,
            models=default_models(CATALOG, self.repo, SPEC.name), exit_timeout_s=1,
            log_path=self.directory / "triton.log",
        )  # fmt: skip
        self.triton.start(ready_timeout_s=300)

    def stop_triton(self) -> None:
        if self.triton is not None:
            self.triton.stop()
            self.triton = None

    def start_gateway(self) -> None:
        env = {
            "GATEWAY_CACHE_SCOPE": "key",
            "REDIS_URL": self.redis_url,  # Redis: balanced, shared key assignment
            # room for every shadowed request of a test: the hand counts compare all pairs (a full
            # queue drops and counts, by design; on a loaded machine the default 256 filled)
            "GATEWAY_SHADOW_QUEUE_MAX": "4096",
        }
        self.gateway = GatewayProcess(self.directory / "gw", self.grpc_url, env=env)
        self.gateway.start()

    def stop_gateway(self) -> None:
        if self.gateway is not None:
            self.gateway.stop()

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        assert self.gateway is not None
        cmd = [sys.executable, "-m", "visionserve", "release", args[0], SPEC.name, *args[1:],
               "--repository", str(self.repo), "--server-url", self.grpc_url]  # fmt: skip
        env = {**self.gateway.env, "TF_CPP_MIN_LOG_LEVEL": "3"}
        proc = subprocess.run(cmd, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)
        if check:
            assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc

    def status(self, *flags: str) -> dict:
        return json.loads(self.cli("status", "--json", *flags).stdout.strip().splitlines()[-1])

    def keys(self, count: int) -> list[str]:
        """``count`` real API keys, made with the gateway's KeyStore on its database and pepper."""
        from gateway.auth import KeyStore
        from gateway.db import make_engine
        from gateway.settings import GatewaySettings, load_pepper

        assert self.gateway is not None
        settings = GatewaySettings(state_dir=Path(self.gateway.env["GATEWAY_STATE_DIR"]))
        engine = make_engine(settings.sqlalchemy_url)
        store = KeyStore(engine, load_pepper(settings))
        try:
            return [store.create(f"release-{i}-{os.getpid()}")[1] for i in range(count)]
        finally:
            engine.dispose()


@pytest.fixture(scope="module")
def stack(exported_repository: Path, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from tests.fixtures.repository import copy_repository

    directory = tmp_path_factory.mktemp("release")
    repo = copy_repository(exported_repository, directory / "model_repository")
    stage_copy(repo, SPEC, 2, favoured=FAVOURED)
    stage_copy(repo, SPEC, 3)
    stage_copy(repo, SPEC, 4, shuffle_seed=15)
    stack = Stack(repo, directory, redis_url)
    stack.start_triton()
    try:
        stack.start_gateway()
        yield stack
    finally:
        stack.stop_gateway()
        stack.stop_triton()


def _classify(http: httpx.Client, key: str, image: bytes, **fields: str) -> dict:
    answer = http.post(
        "/v1/classify",
        files={"image": ("x.jpg", image)},
        data={"model": SPEC.name, **fields},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def _wait_canary(stack: Stack, version: int | None, key: str, image: bytes) -> None:
    """Until the gateway routes ``label=canary`` to ``version`` (None: until it refuses: no canary)."""
    assert stack.gateway is not None
    deadline = time.monotonic() + 20
    with stack.gateway.client() as http:
        while time.monotonic() < deadline:
            r = http.post("/v1/classify", files={"image": ("x.jpg", image)},
                          data={"model": SPEC.name, "label": "canary"},
                          headers={"Authorization": f"Bearer {key}"})  # fmt: skip
            if (version is None and r.status_code == 404) or (r.status_code == 200 and r.json()["version"] == version):
                return
            time.sleep(0.1)
    raise AssertionError(f"the gateway did not see canary {version}")


class Looper(threading.Thread):
    """A client that classifies without pause; every non-200 is a failure."""

    def __init__(self, stack: Stack, key: str) -> None:
        super().__init__(daemon=True)
        self.stack, self.key, self.stop_flag = stack, key, threading.Event()
        self.versions: Counter[int] = Counter()
        self.failures: list[str] = []

    def run(self) -> None:
        assert self.stack.gateway is not None
        images = [unique_jpeg() for _ in range(8)]
        with self.stack.gateway.client(self.key) as http:
            i = 0
            while not self.stop_flag.is_set():
                r = http.post("/v1/classify", files={"image": ("x.jpg", images[i % 8])}, data={"model": SPEC.name})
                if r.status_code == 200:
                    self.versions[r.json()["version"]] += 1
                else:
                    self.failures.append(f"{r.status_code} {r.text[:200]}")
                i += 1

    def finish(self) -> None:
        self.stop_flag.set()
        self.join(30)


def test_weighted_split_pins_cache_and_restarts(stack: Stack) -> None:
    keys = stack.keys(200)
    probe = unique_jpeg()
    stack.cli("start", "--version", "2", "--weight", "10")
    assert read_labels(stack.repo, SPEC.ensemble).canary == 2  # type: ignore[union-attr]
    _wait_canary(stack, 2, keys[0], probe)
    with stack.gateway.client(keys[0]) as http:  # type: ignore[union-attr]
        listed = {m["name"]: m for m in http.get("/v1/models").json()["models"]}[SPEC.name]
    assert (listed["labels"], listed["canary_weight"]) == ({"stable": 1, "canary": 2}, 0.1)

    image = unique_jpeg()
    seen: dict[str, set[tuple[int, str]]] = {}

    def ten(key: str) -> None:
        with httpx.Client(base_url=stack.gateway.url, timeout=60) as http:  # type: ignore[union-attr]
            for _ in range(10):
                body = _classify(http, key, image)
                seen.setdefault(key, set()).add((body["version"], body["route"]))

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(ten, keys))
    assert all(len(v) == 1 for v in seen.values()), "a key saw both versions: the split is not sticky"
    routes = Counter(next(iter(v)) for v in seen.values())
    assert set(routes) <= {(1, "stable"), (2, "weight")}
    share = 10 * routes[(2, "weight")] / 2000
    print(f"\nsplit: weight 10 %, canary share {share:.1%} of 2,000 requests from 200 keys ({routes})")
    assert abs(share - 0.10) <= 0.03

    # pins, and the cache never crosses versions: a stable-routed key's canary answer stays the canary's
    stable_key = next(k for k, v in seen.items() if (1, "stable") in v)
    with stack.gateway.client() as http:  # type: ignore[union-attr]
        fresh = unique_jpeg()
        pinned = _classify(http, stable_key, fresh, label="canary")
        assert (pinned["version"], pinned["route"], pinned["cached"]) == (2, "pin", False)
        assert pinned["predictions"][0]["index"] == FAVOURED
        plain = _classify(http, stable_key, fresh)
        assert (plain["version"], plain["route"], plain["cached"]) == (1, "stable", False)
        assert plain["predictions"][0]["index"] != FAVOURED
        assert _classify(http, stable_key, fresh, version="2")["cached"] is True  # the canary's own cache entry
        assert _classify(http, stable_key, fresh, version="1")["route"] == "pin"
        missing = http.post("/v1/classify", files={"image": ("x.jpg", fresh)},
                            data={"model": SPEC.name, "version": "9"},
                            headers={"Authorization": f"Bearer {stable_key}"})  # fmt: skip
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "version_not_served"

    # restart Triton, then the gateway, mid-release: the labels hold, the same keys see the same versions
    stack.stop_triton()
    stack.start_triton()
    stack.stop_gateway()
    stack.start_gateway()
    _wait_canary(stack, 2, keys[0], probe)
    with stack.gateway.client() as http:  # type: ignore[union-attr]
        for key in keys[:40]:
            body = _classify(http, key, image)
            assert {(body["version"], body["route"])} == seen[key]
    stack.cli("abort")
    assert read_labels(stack.repo, SPEC.ensemble).canary is None  # type: ignore[union-attr]
    assert not (stack.repo / SPEC.canary_ensemble).exists()


def test_videos_follow_the_keys_split(stack: Stack) -> None:
    """A key's videos go where its images go: the canary's share, its version, its cache entries."""
    from visionserve.samples.videos import make_video

    keys = stack.keys(12)
    stack.cli("start", "--version", "2", "--weight", "50")
    _wait_canary(stack, 2, keys[0], unique_jpeg())
    clip = make_video("mp4", "h264", seconds=2.5, fps=10, scenes=2)  # 3 sampled frames
    seen = set()
    try:
        with stack.gateway.client() as http:  # type: ignore[union-attr]
            for key in keys:
                image = _classify(http, key, unique_jpeg())
                answers = [
                    http.post(
                        "/v1/classify/video",
                        files={"video": ("clip.mp4", clip)},
                        data={"model": SPEC.name, "every_seconds": "1"},
                        headers={"Authorization": f"Bearer {key}"},
                    )  # fmt: skip
                    for _ in range(2)
                ]
                assert all(a.status_code == 200 for a in answers), answers[0].text
                body, again = (a.json() for a in answers)
                assert (body["model"], body["version"], body["route"]) == (SPEC.name, image["version"], image["route"])
                top = {frame["predictions"][0]["index"] for frame in body["frames"]}
                assert (FAVOURED in top) == (body["version"] == 2)  # the canary's model answered its frames
                assert (again["version"], again["route"], again["cached"]) == (body["version"], body["route"], True)
                assert body["cached"] is False  # the cache is per key here, and per version always
                seen.add((body["version"], body["route"]))
    finally:
        stack.cli("abort")
    assert seen == {(1, "stable"), (2, "weight")}  # both sides of the split classified videos


def _shadow_run(stack: Stack, version: int, requests: int, keys: list[str]) -> tuple[int, int]:
    """Start a shadow release of ``version``, send ``requests`` images; the hand count (agree, pairs)."""
    stack.cli("start", "--version", str(version), "--weight", "0", "--shadow")
    probe = unique_jpeg()
    _wait_canary(stack, version, keys[0], probe)
    images = [unique_jpeg() for _ in range(requests)]
    stable_top1: dict[int, str] = {}

    def one(i: int) -> None:
        with httpx.Client(base_url=stack.gateway.url, timeout=60) as http:  # type: ignore[union-attr]
            body = _classify(http, keys[i % len(keys)], images[i])
            assert (body["version"], body["route"]) == (1, "stable")
            stable_top1[i] = body["predictions"][0]["label"]

    with ThreadPoolExecutor(3) as pool:
        list(pool.map(one, range(requests)))
    # the hand count: ask Triton directly what the canary pipeline answers for the same images
    with TritonClient(stack.grpc_url, protocol="grpc") as triton:
        canary_top1 = {
            i: triton.classify(images[i], SPEC.canary_ensemble, top_k=1).predictions[0].label for i in range(requests)
        }
    agree = sum(stable_top1[i] == canary_top1[i] for i in range(requests))
    time.sleep(2.0)  # the shadow queue drains and the history writer flushes
    return agree, requests


def test_shadow_verdict_rollback_for_a_broken_canary(stack: Stack) -> None:
    keys = stack.keys(10)
    agree, pairs = _shadow_run(stack, 4, 40, keys)
    status = stack.status()
    print(f"\nbroken canary (labels shuffled): {json.dumps(status, indent=1)}")
    assert status["pairs"] == pairs, "every shadowed image is one pair"
    assert status["agreement"] == pytest.approx(agree / pairs)
    assert status["verdict"] == "rollback"
    assert [c["state"] for c in status["checks"] if c["name"] == "agreement"] == ["fail"]
    assert status["flips"] and status["flips"][0]["count"] >= 1
    loop = Looper(stack, keys[0])
    loop.start()
    time.sleep(1.0)
    auto = stack.cli("status", "--auto")
    loop.finish()
    assert "rolled back" in auto.stdout
    assert loop.failures == [] and set(loop.versions) == {1}
    assert read_labels(stack.repo, SPEC.ensemble).canary is None  # type: ignore[union-attr]


def test_shadow_verdict_promote_for_an_identical_canary(stack: Stack) -> None:
    keys = stack.keys(10)
    hold = None
    agree, pairs = _shadow_run(stack, 3, 620, keys)
    status = stack.status()
    print(f"\nidentical canary: {json.dumps(status, indent=1)}")
    assert status["pairs"] == pairs and status["agreement"] == pytest.approx(agree / pairs) == 1.0
    hold = stack.status("--min-latency-samples", "5000")
    assert hold["verdict"] == "hold" and hold["needed_samples"] > 0
    assert status["verdict"] == "promote", status["checks"]
    loop = Looper(stack, keys[0])
    loop.start()
    time.sleep(1.0)
    auto = stack.cli("status", "--auto")
    time.sleep(1.0)
    loop.finish()
    assert "promoted" in auto.stdout
    assert loop.failures == [], loop.failures[:3]
    assert loop.versions[3] > 0 and set(loop.versions) <= {1, 3}
    labels = read_labels(stack.repo, SPEC.ensemble)
    assert labels is not None and (labels.stable, labels.canary) == (3, None)


def test_promotion_and_abort_under_load_with_weighted_canary(stack: Stack) -> None:
    keys = stack.keys(6)
    stable = read_labels(stack.repo, SPEC.ensemble).stable  # type: ignore[union-attr]
    loops = [Looper(stack, k) for k in keys]
    for loop in loops:
        loop.start()
    time.sleep(1.0)
    stack.cli("start", "--version", "2", "--weight", "50")
    time.sleep(2.0)
    stack.cli("abort")
    time.sleep(1.0)
    stack.cli("start", "--version", "2", "--weight", "50")
    time.sleep(2.0)
    stack.cli("promote")
    time.sleep(1.5)
    for loop in loops:
        loop.finish()
    failures = [f for loop in loops for f in loop.failures]
    assert failures == [], failures[:3]
    versions = sum((loop.versions for loop in loops), Counter())
    assert versions[2] > 0 and versions[stable] > 0
    with TritonClient(stack.grpc_url, protocol="grpc") as triton:
        assert triton.classify(unique_jpeg(), SPEC.ensemble, top_k=1).version == "2"
        assert not triton.is_ready(SPEC.canary_ensemble)
