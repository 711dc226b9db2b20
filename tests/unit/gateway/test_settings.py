"""Gateway settings: conventional env names, driver rewriting, validation, the persisted pepper."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.settings import DEFAULT_MAX_BYTES, GatewaySettings, load_pepper


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TRITON_URL", "REDIS_URL", "DATABASE_URL", "GATEWAY_STATE_DIR", "GATEWAY_API_KEY_PEPPER",
                 "GATEWAY_RATE_BURST", "GATEWAY_MAX_BYTES", "GATEWAY_REDIS_URL"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)


def test_defaults_are_embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = GatewaySettings()
    assert s.triton_url == "127.0.0.1:8001"
    assert s.redis_url is None
    assert s.sqlalchemy_url == f"sqlite:///{tmp_path / '.state' / 'gateway.db'}"
    assert s.state_dir.is_absolute()
    assert s.port == 3000


def test_conventional_names_and_prefixed_knobs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRITON_URL", "triton:9001")
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/1")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db:5432/vs")
    monkeypatch.setenv("GATEWAY_RATE_BURST", "7")
    s = GatewaySettings()
    assert (s.triton_url, s.redis_url, s.rate_burst) == ("triton:9001", "redis://cache:6379/1", 7)
    assert s.sqlalchemy_url == "postgresql+psycopg://u:p@db:5432/vs"


def test_empty_redis_url_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "  ")
    assert GatewaySettings().redis_url is None


def test_max_bytes_merge_over_defaults_and_reject_unknown_formats(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_MAX_BYTES", '{"jpeg": 1000}')
    s = GatewaySettings()
    assert s.max_bytes["JPEG"] == 1000 and s.max_bytes["PNG"] == DEFAULT_MAX_BYTES["PNG"]
    monkeypatch.setenv("GATEWAY_MAX_BYTES", '{"TIFF": 1000}')
    with pytest.raises(ValidationError, match="TIFF"):
        GatewaySettings()


def test_version_poll_interval_is_bounded_by_the_freshness_promise() -> None:
    with pytest.raises(ValidationError):
        GatewaySettings(version_poll_interval_s=0.9)


def test_generated_pepper_is_persisted_private_and_stable(tmp_path: Path) -> None:
    s = GatewaySettings(state_dir=tmp_path / "state")
    first = load_pepper(s)
    assert len(first) >= 32
    assert load_pepper(GatewaySettings(state_dir=tmp_path / "state")) == first
    mode = stat.S_IMODE((tmp_path / "state" / "api_key_pepper").stat().st_mode)
    assert mode == 0o600
    assert not list((tmp_path / "state").glob(".api_key_pepper*"))  # no temp file left behind


def test_configured_pepper_wins(tmp_path: Path) -> None:
    s = GatewaySettings(state_dir=tmp_path, api_key_pepper="from-a-secret")
    assert load_pepper(s) == b"from-a-secret"
    assert not (tmp_path / "api_key_pepper").exists()


def test_every_upload_format_has_a_byte_limit_and_nothing_else_does() -> None:
    from visionserve.imaging import UPLOAD_FORMATS

    assert set(DEFAULT_MAX_BYTES) == set(UPLOAD_FORMATS)


def test_by_default_a_video_within_the_limits_fits_a_full_bucket(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 30 s clip sampled once a second (30 frames, 30 tokens) is not refused by the default burst."""
    for name in ("GATEWAY_RATE_BURST", "GATEWAY_VIDEO_MAX_SAMPLED_FRAMES"):
        monkeypatch.delenv(name, raising=False)
    settings = GatewaySettings()
    assert settings.rate_burst >= settings.video_max_sampled_frames >= 30
    assert settings.video_limits.max_sampled_frames == settings.video_max_sampled_frames


def test_the_upload_policy_is_the_settings_of_its_names(monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.uploads import UploadPolicy

    assert UploadPolicy.from_settings(GatewaySettings()) == UploadPolicy()  # the same defaults
    monkeypatch.setenv("GATEWAY_MAX_PIXELS", "1234")
    monkeypatch.setenv("GATEWAY_MAX_JPEG_SCANS", "7")
    policy = UploadPolicy.from_settings(GatewaySettings())
    assert (policy.max_pixels, policy.max_jpeg_scans) == (1234, 7)
