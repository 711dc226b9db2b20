"""``POST /v1/classify/video`` against the real gateway and tritonserver, on clips the tests make.

Several containers and codecs, both samplings, hostile and corrupt files (4xx JSON, Triton
untouched), the cache, the one history row, the per-frame rate-limit charge, and parity: each
frame's answer equals what the image route answers for the same sampled frame.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.integration.gateway.conftest import GatewayProcess, ensemble_counts, running_gateway
from visionserve.samples.videos import FORMATS, make_video
from visionserve.video import DEFAULT_VIDEO_LIMITS, Sampling, sample_video

pytestmark = pytest.mark.integration
MODEL = "resnet18"
ROUTE = "/v1/classify/video"


def _post(http: httpx.Client, video: bytes, name: str = "clip.mp4", **fields: object) -> httpx.Response:
    data = {"model": MODEL, **{k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in fields.items()}}
    return http.post(ROUTE, files={"video": (name, video, "video/mp4")}, data=data)


@pytest.mark.parametrize(("container", "codec"), FORMATS, ids=[f"{c}-{k}" for c, k in FORMATS])
def test_every_container_and_codec_is_classified_once_a_second(
    gateway: GatewayProcess, container: str, codec: str
) -> None:
    video = make_video(container, codec, seconds=3.0, fps=10, scenes=3)
    with gateway.client(gateway.key()) as http:
        r = _post(http, video, f"clip.{container}", every_seconds=1, top_k=3)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == MODEL and body["version"] >= 1 and body["cached"] is False
    assert body["duration_s"] == pytest.approx(3.0, abs=0.15)
    assert body["sampling"] == {"every_seconds": 1.0, "keyframes_only": False}
    assert [f["t_s"] for f in body["frames"]] == pytest.approx([0.0, 1.0, 2.0], abs=0.05)
    assert all(len(f["predictions"]) == 3 for f in body["frames"]) and len(body["aggregate"]) == 3
    scores = [p["score"] for p in body["aggregate"]]
    assert scores == sorted(scores, reverse=True)
    segments = body["segments"]
    assert sum(s["frames"] for s in segments) == 3 and segments[0]["start_s"] == body["frames"][0]["t_s"]
    tops = [f["predictions"][0]["index"] for f in body["frames"]]
    assert [s["index"] for s in segments] == [t for i, t in enumerate(tops) if i == 0 or tops[i - 1] != t]
    assert r.headers["x-request-id"] == body["request_id"] and "x-ratelimit-remaining" in r.headers


def test_keyframes_only_classifies_the_key_frames(gateway: GatewayProcess) -> None:
    video = make_video("webm", "vp8", seconds=4.0, fps=10, gop=20)
    with gateway.client(gateway.key()) as http:
        r = _post(http, video, "clip.webm", keyframes_only=True)
    assert r.status_code == 200, r.text
    frames = r.json()["frames"]
    assert [f["t_s"] for f in frames] == pytest.approx([0.0, 2.0], abs=0.05) and all(f["keyframe"] for f in frames)
    assert r.json()["sampling"] == {"every_seconds": None, "keyframes_only": True}


def test_each_frame_answers_what_the_image_route_answers_for_that_frame(gateway: GatewayProcess) -> None:
    """Parity: the same sampled JPEG through /v1/classify gives the same labels and scores (1e-5)."""
    video = make_video("mp4", "h264", seconds=4.0, fps=10, scenes=4, size=(320, 240))
    _, frames = sample_video(video, "mp4", Sampling(1.0), DEFAULT_VIDEO_LIMITS)
    with gateway.client(gateway.key()) as http:
        r = _post(http, video, every_seconds=1, top_k=5)
        assert r.status_code == 200, r.text
        images = []
        for frame in frames:
            one = http.post("/v1/classify", files={"image": ("f.jpg", frame.jpeg, "image/jpeg")},
                            data={"model": MODEL, "top_k": "5"})  # fmt: skip
            assert one.status_code == 200, one.text
            images.append(one.json())
    got = r.json()["frames"]
    assert len(got) == len(frames) == 4
    for by_video, by_image in zip(got, images, strict=True):
        assert [p["index"] for p in by_video["predictions"]] == [p["index"] for p in by_image["predictions"]]
        assert [p["label"] for p in by_video["predictions"]] == [p["label"] for p in by_image["predictions"]]
        for a, b in zip(by_video["predictions"], by_image["predictions"], strict=True):
            assert a["score"] == pytest.approx(b["score"], abs=1e-5)
        assert by_image["version"] == r.json()["version"]
    # non-trivial: the four scenes do not all give the same distribution
    tops = {tuple(round(p["score"], 4) for p in f["predictions"]) for f in got}
    assert len(tops) >= 2


def test_a_repeat_is_a_cache_hit_and_each_request_is_one_history_row(gateway: GatewayProcess, triton) -> None:
    video = make_video("mov", "h264", seconds=2.5, fps=8, scenes=2)
    with gateway.client(gateway.key()) as http:
        first = _post(http, video, "clip.mov", every_seconds=0.5, top_k=2)
        before = ensemble_counts(triton.grpc_url, MODEL)
        again = _post(http, video, "clip.mov", every_seconds=0.5, top_k=2)
        after = ensemble_counts(triton.grpc_url, MODEL)
        other = _post(http, video, "clip.mov", every_seconds=1, top_k=2)  # another sampling: not that entry
        records = http.get("/v1/history").json()["records"]
    assert first.status_code == again.status_code == other.status_code == 200
    assert first.json()["cached"] is False and again.json()["cached"] is True and other.json()["cached"] is False
    assert again.json()["frames"] == first.json()["frames"] and again.json()["segments"] == first.json()["segments"]
    assert after == before  # the hit asked Triton nothing
    assert len(first.json()["frames"]) == 5 and len(other.json()["frames"]) == 3
    assert len(records) == 3  # one row per request, not per frame
    by_request = {rec["request_id"]: rec for rec in records}
    row = by_request[first.json()["request_id"]]
    assert row["frames"] == 5 and row["duration_s"] == pytest.approx(2.5, abs=0.15) and row["status"] == "ok"
    assert [p["index"] for p in row["predictions"]] == [p["index"] for p in first.json()["aggregate"]]
    assert by_request[again.json()["request_id"]]["cached"] is True


def _hostile(video: bytes) -> list[tuple[str, bytes, dict[str, object], int, str]]:
    too_long = make_video("mp4", "h264", seconds=DEFAULT_VIDEO_LIMITS.max_duration_s + 2, fps=2, size=(64, 48), gop=50)
    huge = make_video("mp4", "h264", seconds=0.5, fps=2, size=(2048, 1152), gop=2)
    return [
        ("pdf", b"%PDF-1.4 not a video at all" * 10, {}, 415, "unsupported_video"),
        ("png", b"\x89PNG\r\n\x1a\n" + bytes(100), {}, 415, "unsupported_video"),
        ("mkv-not-webm", b"\x1a\x45\xdf\xa3\x42\x82\x88matroska" + bytes(64), {}, 415, "unsupported_video"),
        ("empty", b"", {}, 400, "empty_video"),
        ("header-only", video[:64], {}, 400, ""),
        ("garbage-after-header", video[:64] + bytes(range(256)) * 40, {}, 400, ""),
        ("both-samplings", video, {"every_seconds": 1, "keyframes_only": True}, 400, "invalid_request"),
        ("zero-interval", video, {"every_seconds": 0}, 400, "invalid_request"),
        ("nan-interval", video, {"every_seconds": "nan"}, 400, "invalid_request"),
        ("too-many-sampled", video, {"every_seconds": 0.01}, 413, "too_many_frames"),
        ("too-long", too_long, {}, 413, "video_too_large"),
        ("too-many-pixels", huge, {}, 413, "video_too_large"),
        ("unknown-field", video, {"min_score": 0.5}, 400, "invalid_request"),
    ]


def test_hostile_corrupt_and_over_limit_videos_are_4xx_json_and_never_reach_triton(
    gateway: GatewayProcess, triton
) -> None:
    video = make_video("mp4", "h264", seconds=3.0)
    cases = _hostile(video)
    before = ensemble_counts(triton.grpc_url, MODEL)
    with gateway.client(gateway.key()) as http:
        answers = [(name, status, code, _post(http, data, **fields)) for name, data, fields, status, code in cases]
        as_json = http.post(ROUTE, json={"video": "AAAA", "model": MODEL})
        two = http.post(ROUTE, files=[("video", ("a.mp4", video)), ("video", ("b.mp4", video))])
        records = http.get("/v1/history", params={"limit": 100}).json()["records"]
    after = ensemble_counts(triton.grpc_url, MODEL)
    for name, status, code, r in answers:
        assert r.status_code == status, (name, r.status_code, r.text)
        error = r.json()["error"]
        assert set(error) == {"code", "message"} and error["message"], name
        if code:
            assert error["code"] == code, (name, error)
    assert as_json.status_code == 415 and two.status_code == 400
    assert after == before  # nothing reached Triton
    refused = [rec for rec in records if rec["status"] == "rejected"]
    assert {rec["http_status"] for rec in refused} >= {413, 415}


def test_each_sampled_frame_costs_a_token_and_a_video_over_the_rest_gets_429_before_triton(
    triton, tmp_path: Path
) -> None:
    env = {"GATEWAY_RATE_PER_S": "0.01", "GATEWAY_RATE_BURST": "8"}
    with running_gateway(tmp_path / "gw", triton.grpc_url, env=env) as gw, gw.client(gw.key()) as http:
        five = _post(http, make_video("mp4", "h264", seconds=4.5, fps=10), every_seconds=1)  # 5 frames
        assert five.status_code == 200, five.text
        assert int(five.headers["x-ratelimit-remaining"]) == 3  # 8 - 5
        before = ensemble_counts(triton.grpc_url, MODEL)
        four = _post(http, make_video("mp4", "h264", seconds=3.5, fps=10, scenes=2), every_seconds=1)  # 4 > 3 left
        after = ensemble_counts(triton.grpc_url, MODEL)
        over_burst = _post(http, make_video("mp4", "h264", seconds=9.5, fps=4), every_seconds=1)  # 10 > 8 ever
        records = http.get("/v1/history").json()["records"]
    assert four.status_code == 429, four.text
    assert (
        int(four.headers["retry-after"]) >= 1 and "4 sampled frames needs 4 tokens" in four.json()["error"]["message"]
    )
    assert after == before  # refused before Triton
    assert over_burst.status_code == 413 and over_burst.json()["error"]["code"] == "too_many_frames"
    refused = next(
        rec for rec in records if rec["request_id"] == four.json().get("request_id", four.headers["x-request-id"])
    )
    assert refused["http_status"] == 429 and refused["frames"] == 4
