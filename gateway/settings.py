"""Gateway configuration, read from the environment once per process.

``TRITON_URL``, ``REDIS_URL`` and ``DATABASE_URL`` are read under their usual names (what
operators and the Helm chart set); every other knob is ``GATEWAY_<FIELD>``. Unset means the
embedded defaults: Triton on localhost, an in-process cache and rate limiter, and a SQLite file
under ``.state/``, so ``make gateway`` works with nothing else running.
"""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.proxies import parse_networks
from visionserve.imaging import DEFAULT_MAX_ASPECT_RATIO, DEFAULT_MAX_PIXELS
from visionserve.settings import DEFAULT_GATEWAY_PORT, DEFAULT_GRPC_PORT
from visionserve.video import DEFAULT_VIDEO_LIMITS, VideoLimits

__all__ = ["DEFAULT_MAX_BYTES", "GatewaySettings", "get_settings", "load_pepper"]

MIB = 2**20
#: Largest encoded image accepted, per format (after base64 decoding). BMP is uncompressed,
#: so it gets the most room; everything else is a compressed photo format.
DEFAULT_MAX_BYTES: dict[str, int] = {
    "JPEG": 12 * MIB,
    "PNG": 16 * MIB,
    "WEBP": 12 * MIB,
    "GIF": 8 * MIB,
    "BMP": 24 * MIB,
}


def _env_alias(name: str) -> AliasChoices:
    """Accept both the conventional name (``REDIS_URL``) and ``GATEWAY_REDIS_URL``."""
    return AliasChoices(name, f"GATEWAY_{name}")


class GatewaySettings(BaseSettings):
    """Every setting of the gateway, with its default and unit.

    Args:
        triton_url: Triton's gRPC endpoint, ``host:port``.
        triton_timeout_s: deadline of one inference call.
        redis_url: ``redis://…``; unset → in-process cache and rate limiter (one worker's view).
        database_url: SQLAlchemy URL of the history/keys database; ``postgresql://`` is
            rewritten to the installed psycopg 3 driver.
        state_dir: where the default SQLite file and the generated pepper live.
        api_key_pepper: secret mixed into every API-key hash; generated into ``state_dir``
            when unset (set it from a secret in production, identical on every replica).
        rate_per_s: tokens added to each key's bucket per second.
        rate_burst: bucket capacity (the most requests a key may send at once; as large as
            ``video_max_sampled_frames``, so a 60 s clip at one frame a second fits a full bucket).
        decode_ms_per_token: an image that misses the cache costs one more token per this
            many milliseconds of estimated decode (``uploads.assess``: pixels, scans,
            structure), up to ``rate_burst``: a key's rate limit bounds the CPU it can spend,
            not only its request count. A 640x480 JPEG costs 1 token, a 4 MP RLE BMP 18.
        anonymous_rate_per_s / anonymous_burst: the bucket per client address for requests
            without a valid key, so key guessing is throttled too. An unknown key is checked
            against this bucket *before* its database lookup, so misses cannot flood the database.
        trusted_proxies: comma-separated CIDRs of reverse proxies (an ingress) whose
            ``X-Forwarded-For`` is believed; empty (the default) trusts no one and the client
            address is the TCP peer. Without it, behind an ingress, every caller shares one bucket.
        cache_ttl_s: how long a classification stays cached.
        cache_max_bytes: capacity of the in-process LRU, in (estimated) bytes of its entries.
        cache_scope: ``key`` (default): answers are cached per API key, so no key learns that
            another uploaded the same bytes; ``shared``: one answer for everyone (more hits,
            but ``cached: true`` then tells a caller that someone else sent that image).
        redis_timeout_s: deadline of one Redis command; Redis slower than this counts as down.
        redis_retry_s: after a Redis failure, how long to go without it before trying again.
        max_bytes: largest encoded image per format.
        max_pixels: largest width × height accepted (read from the header, before decoding).
        max_aspect_ratio: most elongated image accepted (the preprocessing's own guard).
        max_jpeg_scans: most scans (SOS markers) in one JPEG (a progressive photo has ~10;
            each scan costs a pass over the whole image).
        max_rle_pixels: largest RLE-compressed BMP (Pillow decodes RLE in pure Python).
        max_frames: most frames in an animated GIF or WebP (only the first is classified).
        decode_workers: processes that run the costly upload checks, per gateway worker.
        decode_timeout_s: the most one such check may take; its process is killed after it
            and the upload refused (413 ``decode_timeout``).
        decode_memory_bytes: address-space cap of each decode process (0: none).
        max_inflight_body_bytes: request-body bytes one worker holds at once (each request
            reserves its ``Content-Length``); past it a request waits, then gets 503.
        max_request_bytes: body cap of every request but batches (base64 JSON included).
        max_batch_request_bytes: body cap of ``/v1/classify/batch``.
        batch_max_images: most images in one batch request.
        max_top_k: largest ``top_k`` a caller may ask for.
        video_max_bytes: largest video file ``/v1/classify/video`` accepts (within
            ``max_request_bytes``, which caps the whole body).
        video_max_duration_s: longest video, as declared by its container and as decoded.
        video_max_pixels: largest frame (width x height) of a video.
        video_max_frames: most frames in a video's stream (declared, or duration x rate).
        video_max_sampled_frames: most frames one video request classifies; each costs a
            rate-limit token, so the key bucket's ``rate_burst`` caps it too.
        video_decode_timeout_s: the most sampling one video may take in a decode process.
        hsts_max_age_s: ``Strict-Transport-Security`` max-age; 0 leaves the header out.
        version_poll_interval_s: how often each worker asks Triton which versions are ready.
        auth_cache_ttl_s: how long a key lookup is reused; a revoked key stops working
            within this time. Unknown keys are remembered as long, in a cache of their own.
        ready_cache_ttl_s: how long a ``/readyz`` answer is reused (probes cost no Triton call
            within it).
        metrics_token: when set, ``/metrics`` needs ``Authorization: Bearer <token>``.
        history_flush_interval_s: how long history rows wait to be written in one batch.
        history_batch_rows: most rows per write.
        history_queue_max: rows kept in memory while the database is unreachable.
        shadow_queue_max: shadow jobs (requests to mirror to a canary) waiting per worker;
            beyond it they are dropped and counted (``gateway.shadow``).
        retry_after_s: ``Retry-After`` sent with a 503.
        auto_budget_ms: latency budget of ``model=auto`` when the caller sends none
            (unset: the most accurate ready model).
        ms_per_gflop: prior for a model's expected latency before it has been measured.
        workers: gateway worker processes.
        trace_requests: let BentoML's OpenTelemetry middleware trace /v1 requests (costs
            about 0.3 ms per request; useful only with a tracing exporter configured).
        access_log: BentoML's per-request access log line (off by default: the history table
            already records every classification, and the log line costs a cache hit ~15 %).
        host / port: where ``visionserve gateway`` listens.
    """

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", frozen=True)

    triton_url: str = Field(f"127.0.0.1:{DEFAULT_GRPC_PORT}", validation_alias=_env_alias("TRITON_URL"))
    triton_timeout_s: float = Field(30.0, gt=0)
    redis_url: str | None = Field(None, validation_alias=_env_alias("REDIS_URL"))
    database_url: str | None = Field(None, validation_alias=_env_alias("DATABASE_URL"))
    state_dir: Path = Path(".state")
    api_key_pepper: SecretStr | None = None

    rate_per_s: float = Field(10.0, gt=0)
    rate_burst: int = Field(64, ge=1)  # = video_max_sampled_frames: any video within the limits fits a full bucket
    decode_ms_per_token: float = Field(25.0, gt=0)
    anonymous_rate_per_s: float = Field(5.0, gt=0)
    anonymous_burst: int = Field(20, ge=1)
    trusted_proxies: str = ""

    cache_ttl_s: float = Field(3600.0, gt=0)
    cache_max_bytes: int = Field(64 * MIB, ge=1024)
    cache_scope: Literal["key", "shared"] = "key"
    redis_timeout_s: float = Field(0.25, gt=0)
    redis_retry_s: float = Field(1.0, ge=0)

    max_bytes: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_MAX_BYTES))
    max_pixels: int = Field(DEFAULT_MAX_PIXELS, ge=1)
    max_aspect_ratio: float = Field(DEFAULT_MAX_ASPECT_RATIO, ge=1)
    max_jpeg_scans: int = Field(32, ge=1)
    max_rle_pixels: int = Field(4_000_000, ge=1)
    max_frames: int = Field(100, ge=1)
    decode_workers: int = Field(2, ge=1)
    decode_timeout_s: float = Field(5.0, gt=0)
    decode_memory_bytes: int = Field(2 * 1024 * MIB, ge=0)
    max_inflight_body_bytes: int = Field(256 * MIB, ge=1024)
    max_request_bytes: int = Field(34 * MIB, ge=1024)
    max_batch_request_bytes: int = Field(96 * MIB, ge=1024)
    batch_max_images: int = Field(16, ge=1)
    max_top_k: int = Field(100, ge=1)
    video_max_bytes: int = Field(32 * MIB, ge=1024)
    video_max_duration_s: float = Field(DEFAULT_VIDEO_LIMITS.max_duration_s, gt=0)
    video_max_pixels: int = Field(DEFAULT_VIDEO_LIMITS.max_pixels, ge=1)
    video_max_frames: int = Field(DEFAULT_VIDEO_LIMITS.max_frames, ge=1)
    video_max_sampled_frames: int = Field(DEFAULT_VIDEO_LIMITS.max_sampled_frames, ge=1)
    video_decode_timeout_s: float = Field(30.0, gt=0)

    hsts_max_age_s: int = Field(31_536_000, ge=0)
    version_poll_interval_s: float = Field(0.25, gt=0, le=0.5)
    auth_cache_ttl_s: float = Field(1.0, ge=0)
    ready_cache_ttl_s: float = Field(1.0, ge=0)
    metrics_token: SecretStr | None = None
    history_flush_interval_s: float = Field(0.5, gt=0)
    history_batch_rows: int = Field(500, ge=1)
    history_queue_max: int = Field(100_000, ge=1)
    shadow_queue_max: int = Field(256, ge=1)
    retry_after_s: int = Field(2, ge=1)
    auto_budget_ms: float | None = Field(None, gt=0)
    ms_per_gflop: float = Field(10.0, gt=0)

    workers: int = Field(1, ge=1)
    trace_requests: bool = False
    access_log: bool = False
    host: str = "0.0.0.0"
    port: int = DEFAULT_GATEWAY_PORT

    @field_validator("redis_url", "database_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("trusted_proxies")
    @classmethod
    def _cidrs(cls, value: str) -> str:
        parse_networks(value)  # refuse a typo at start, not on the first request
        return value

    @property
    def trusted_networks(self) -> tuple[IPv4Network | IPv6Network, ...]:
        """``trusted_proxies`` parsed."""
        return parse_networks(self.trusted_proxies)

    @field_validator("max_bytes")
    @classmethod
    def _known_formats(cls, value: dict[str, int]) -> dict[str, int]:
        merged = {k.upper(): int(v) for k, v in value.items()}
        unknown = sorted(set(merged) - set(DEFAULT_MAX_BYTES))
        if unknown:
            raise ValueError(f"unknown image formats {unknown}; known: {sorted(DEFAULT_MAX_BYTES)}")
        return {**DEFAULT_MAX_BYTES, **merged}

    @model_validator(mode="after")
    def _absolute_state_dir(self) -> GatewaySettings:
        # Workers may start in another directory: pin relative paths to where we were started.
        object.__setattr__(self, "state_dir", self.state_dir.expanduser().resolve())
        return self

    @property
    def video_limits(self) -> VideoLimits:
        """What one video request may cost (``rate_burst`` bounds the frames as well)."""
        return VideoLimits(
            max_duration_s=self.video_max_duration_s,
            max_pixels=self.video_max_pixels,
            max_frames=self.video_max_frames,
            max_sampled_frames=min(self.video_max_sampled_frames, self.rate_burst),
        )

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL SQLAlchemy gets: the default SQLite file, or DATABASE_URL with a driver."""
        url = self.database_url or f"sqlite:///{self.state_dir / 'gateway.db'}"
        for prefix in ("postgres://", "postgresql://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix) :]
        return url


def load_pepper(settings: GatewaySettings) -> bytes:
    """The API-key pepper: from settings, else from ``state_dir/api_key_pepper`` (created once, 0600).

    Every process that hashes keys (the CLI, each worker, each replica) must see the same
    pepper, so a generated one is persisted rather than kept in memory.
    """
    if settings.api_key_pepper is not None:
        return settings.api_key_pepper.get_secret_value().encode()
    path = settings.state_dir / "api_key_pepper"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(32))
        try:
            os.link(tmp, path)  # atomic and never overwrites: a concurrent creator's pepper wins
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip().encode()


@lru_cache(maxsize=1)
def get_settings() -> GatewaySettings:
    """The process-wide settings (read from the environment on first use)."""
    return GatewaySettings()
