"""The classification flow with an in-process fake Triton: cache, checks, batching, history rows."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from client import Classification, Prediction, ServerUnavailable
from gateway.auth import Identity
from gateway.cache import LocalCache
from gateway.classify import Classifier, ClassifyRequest
from gateway.db import make_engine, migrate
from gateway.errors import BadRequest, NotFound, UpstreamUnavailable
from gateway.history import HistoryQuery, HistoryWriter, list_page
from gateway.metrics import GatewayMetrics
from gateway.routing import AutoRouter
from gateway.uploads import UploadPolicy
from gateway.versions import VersionTracker
from tests.fixtures.corpus import hostile_corpus, valid_corpus
from visionserve.catalog import load_catalog
from visionserve.errors import ImageError

CATALOG = load_catalog()
MODEL = "resnet18"
ALICE = Identity("k1", "alice", "user")
JPEG = dict(valid_corpus())["baseline.jpg"]
PNG = dict(valid_corpus())["rgb.png"]


class FakeTriton:
    """Answers like the client does; counts calls; can be switched off."""

    def __init__(self) -> None:
        self.version = 1
        self.calls: list[int] = []
        self.down = False

    async def classify_batch(self, images, model, *, top_k=5, version=""):
        if self.down:
            raise ServerUnavailable("cannot reach Triton")
        self.calls.append(len(images))
        preds = tuple(Prediction(f"class{i}", i, 0.5 / (i + 1)) for i in range(top_k))
        return [Classification(model, str(self.version), preds) for _ in images]

    async def model_config(self, model):
        versions = {"specific": {"versions": [str(self.version)]}}
        return {"version_policy": versions, "parameters": {"weights": {"string_value": "demo"}}}

    async def is_ready(self, model=None, version=""):
        return not self.down and str(version) == str(self.version)


@pytest.fixture
async def setup(tmp_path: Path):
    engine = make_engine(f"sqlite:///{tmp_path / 'gw.db'}")
    migrate(engine)
    triton = FakeTriton()
    tracker = VersionTracker(triton, CATALOG)
    await tracker.refresh()
    history = HistoryWriter(engine)
    classifier = Classifier(
        catalog=CATALOG, triton=triton, cache=LocalCache(2**20, 60), tracker=tracker,
        router=AutoRouter(CATALOG), history=history, metrics=GatewayMetrics(CollectorRegistry()),
        policy=UploadPolicy(), max_top_k=100, retry_after_s=3,
    )  # fmt: skip
    yield classifier, triton, tracker, engine
    await classifier.close()
    await history.close()


def req(model: str = MODEL, top_k: int = 3, min_score: float = 0.0, budget: float | None = None) -> ClassifyRequest:
    return ClassifyRequest(ALICE, "rid-1", model, top_k, min_score, budget, time.perf_counter())


async def rows(classifier: Classifier, engine) -> list:
    await classifier.history.flush()
    return list_page(engine, HistoryQuery(user="alice", limit=100))[0]


@pytest.mark.anyio
async def test_miss_then_hit_and_one_row_each(setup) -> None:
    classifier, triton, _, engine = setup
    first = await classifier.classify_one(req(), JPEG)
    second = await classifier.classify_one(req(), JPEG)
    assert (first.cached, second.cached) == (False, True)
    assert first.predictions == second.predictions and first.version == 1 and first.weights == "demo"
    assert triton.calls == [1]
    recorded = await rows(classifier, engine)
    assert [r.cached for r in recorded] == [True, False]
    assert {r.status for r in recorded} == {"ok"} and recorded[0].predictions[0].label == "class0"


@pytest.mark.anyio
async def test_top_k_and_min_score(setup) -> None:
    classifier, triton, _, _ = setup
    answer = await classifier.classify_one(req(top_k=4, min_score=0.2), JPEG)
    assert [p.label for p in answer.predictions] == ["class0", "class1"]  # 0.5, 0.25 kept; 0.167, 0.125 dropped
    await classifier.classify_one(req(top_k=5), JPEG)
    assert triton.calls == [1, 1]  # another top_k is another cache entry
    with pytest.raises(BadRequest):
        await classifier.classify_one(req(top_k=1001), JPEG)


@pytest.mark.anyio
async def test_a_new_served_version_never_reads_the_old_entry(setup) -> None:
    classifier, triton, tracker, _ = setup
    assert (await classifier.classify_one(req(), JPEG)).version == 1
    triton.version = 2
    await tracker.refresh()
    answer = await classifier.classify_one(req(), JPEG)
    assert (answer.version, answer.cached) == (2, False)


@pytest.mark.anyio
async def test_rejected_uploads_never_reach_triton_and_are_recorded(setup) -> None:
    classifier, triton, _, engine = setup
    for item in hostile_corpus()[:12]:
        with pytest.raises(ImageError) as info:
            await classifier.classify_one(req(), item.data)
        assert info.value.error_code == item.status
    assert triton.calls == []
    recorded = await rows(classifier, engine)
    assert len(recorded) == 12 and {r.status for r in recorded} == {"rejected"}


@pytest.mark.anyio
async def test_triton_down_is_503_with_retry_after_and_a_failed_row(setup) -> None:
    classifier, triton, _, engine = setup
    triton.down = True
    with pytest.raises(UpstreamUnavailable) as info:
        await classifier.classify_one(req(), JPEG)
    assert info.value.error_code == 503 and info.value.headers["Retry-After"] == "3"
    (row,) = await rows(classifier, engine)
    assert (row.status, row.http_status, row.cached) == ("error", 503, False) and "unavailable" in row.error


@pytest.mark.anyio
async def test_unknown_model_and_auto(setup) -> None:
    classifier, _, _, _ = setup
    with pytest.raises(NotFound):
        await classifier.classify_one(req(model="nope"), JPEG)
    answer = await classifier.classify_one(req(model="auto"), JPEG)
    best = max(CATALOG.models.values(), key=lambda s: s.top1_accuracy or 0).name
    assert answer.model == best


@pytest.mark.anyio
async def test_auto_uses_the_configured_budget_when_the_request_gives_none(setup) -> None:
    classifier, _, _, _ = setup
    specs = [s for s in CATALOG.models.values() if s.gflops is not None and s.top1_accuracy is not None]
    fastest = min(specs, key=lambda s: s.gflops)
    most_accurate = max(specs, key=lambda s: s.top1_accuracy)
    assert fastest.name != most_accurate.name  # the catalog offers a trade-off to choose in
    classifier.default_budget_ms = classifier.router.estimate(fastest.name).expected_ms  # only the fastest fits
    assert classifier.resolve_model("auto", None) == fastest.name
    assert classifier.resolve_model("auto", 1e6) == most_accurate.name  # the request's own budget wins
    classifier.default_budget_ms = None
    assert classifier.resolve_model("auto", None) == most_accurate.name


@pytest.mark.anyio
async def test_batch_is_one_triton_request_with_per_image_errors(setup) -> None:
    classifier, triton, _, engine = setup
    await classifier.classify_one(req(), PNG)  # cached beforehand
    bad = hostile_corpus()[1].data
    items = [
        (JPEG, "a.jpg"),
        (bad, "b.pdf"),
        (PNG, "c.png"),
        (JPEG, "dup.jpg"),
        (dict(valid_corpus())["lossless.webp"], "d"),
    ]
    model, outcomes = await classifier.classify_batch(req(), items)
    assert model == MODEL
    assert triton.calls == [1, 2]  # the PNG was cached; the two JPEGs are one image; the webp
    assert [o.error is None for o in outcomes] == [True, False, True, True, True]
    assert outcomes[1].error.error_code == 415
    assert outcomes[2].answer.cached and not outcomes[0].answer.cached
    assert len(await rows(classifier, engine)) == 1 + 5


@pytest.mark.anyio
async def test_batch_with_triton_down_fails_whole_when_nothing_was_answered(setup) -> None:
    classifier, triton, _, _ = setup
    await classifier.classify_one(req(), PNG)
    triton.down = True
    _, outcomes = await classifier.classify_batch(req(), [(PNG, None), (JPEG, None)])
    assert outcomes[0].answer.cached and outcomes[1].error.error_code == 503  # partial: 200 with an error
    with pytest.raises(UpstreamUnavailable):
        await classifier.classify_batch(req(), [(JPEG, None)])


@pytest.mark.anyio
async def test_costly_uploads_never_stall_the_event_loop(setup) -> None:
    """Small in bytes, dear to decode (issue 12): checked in a decode process, the loop keeps running."""
    import asyncio

    from tests.fixtures.corpus import costly_valid

    classifier, triton, _, _ = setup
    await classifier.decode_pool.start()
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    tick = asyncio.ensure_future(ticker())
    answers = await asyncio.gather(*(classifier.classify_one(req(), data) for _, data in costly_valid()))
    done.set()
    await tick
    assert all(not a.cached for a in answers) and triton.calls == [1] * len(costly_valid())
    assert max(gaps) < 0.15, f"the loop stalled {max(gaps) * 1000:.0f} ms"


@pytest.mark.anyio
async def test_large_uploads_are_hashed_off_the_event_loop() -> None:
    """Finding: SHA-256 of every upload ran on the event loop (a 32 MiB body: ~20 ms of stall)."""
    import asyncio
    import hashlib

    from gateway.classify import INLINE_HASH_BYTES, image_digest

    async def turns_while_hashing(data: bytes) -> tuple[str, int]:
        turns = 0

        async def other_request() -> None:  # stands for /livez and every other request on the loop
            nonlocal turns
            while True:
                turns += 1
                await asyncio.sleep(0)

        other = asyncio.create_task(other_request())
        await asyncio.sleep(0)
        before = turns
        digest = await image_digest(data)
        other.cancel()
        return digest, turns - before

    large = bytes(range(256)) * (4 * INLINE_HASH_BYTES // 256)
    digest, turns = await turns_while_hashing(large)
    assert digest == hashlib.sha256(large).hexdigest()
    assert turns >= 1, "the loop ran nothing else while the upload was hashed"
    small = JPEG
    digest, turns = await turns_while_hashing(small)
    assert digest == hashlib.sha256(small).hexdigest() and turns == 0  # small: inline, no hop
