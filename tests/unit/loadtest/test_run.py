"""The `visionserve loadtest` command line: durations, the Locust command, early errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.run import TARGETS, LoadTestError, locust_command, main, parse_duration_s
from visionserve.errors import VisionServeError


@pytest.mark.parametrize("text, seconds", [("30s", 30), ("5m", 300), ("1h30m", 5400), ("90", 90), ("2.5", 2.5)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration_s(text) == seconds


@pytest.mark.parametrize("text", ["", "5x", "m", "1d"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(LoadTestError):
        parse_duration_s(text)


def test_headless_command_writes_reports_and_names_the_user_class(tmp_path: Path) -> None:
    cmd = locust_command(TARGETS["grpc"], "127.0.0.1:8001", users=8, spawn_rate=4, duration="30s",
                         processes=2, report_prefix=tmp_path / "locust", extra=["--repeat-share", "0.3"])  # fmt: skip
    text = " ".join(cmd)
    assert cmd[-1] == "TritonGrpcUser"
    assert "triton_grpc_user.py" in text and "shape" not in text
    for part in ("--headless", "--users 8", "--spawn-rate 4", "--run-time 30s", "--processes 2",
                 f"--csv {tmp_path / 'locust'}", f"--html {tmp_path / 'locust'}.html", "--repeat-share 0.3",
                 "--exit-code-on-error 0"):  # fmt: skip
        assert part in text


def test_step_shape_decides_users_and_duration_itself() -> None:
    cmd = locust_command(TARGETS["gateway"], "http://h:3000", users=8, spawn_rate=4, duration="30s", shape="step")
    text = " ".join(cmd)
    assert "shape_step.py" in text and "gateway_user.py" in text
    assert "--users" not in text and "--run-time" not in text


def test_soak_shape_reads_users_and_duration() -> None:
    text = " ".join(locust_command(TARGETS["http"], "http://h", users=8, spawn_rate=4, duration="1h", shape="soak"))
    assert "shape_soak.py" in text and "--users 8" in text and "--run-time 3600s" in text


def test_ui_command_has_no_headless_flags() -> None:
    cmd = locust_command(TARGETS["http"], "http://h", users=8, spawn_rate=4, duration="30s", ui=True, web_port=9999)
    text = " ".join(cmd)
    assert "--headless" not in text and "--csv" not in text and "--web-port 9999" in text


def test_every_target_names_an_existing_locustfile() -> None:
    for target in TARGETS.values():
        assert (Path(__file__).resolve().parents[3] / "loadtest" / target.locustfile).is_file()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--duration", "5x", "--host", "h"], "not a duration"),
        (["--models", "nosuchmodel", "--host", "h"], "unknown model"),
        (["--users", "0", "--host", "h"], "--users"),
        (["--max-error-rate", "2", "--host", "h"], "max-error-rate"),
        (["--target", "gateway", "--host", "http://127.0.0.1:9", "--api-key", ""], "API key"),
    ],
)
def test_bad_options_fail_before_anything_starts(
    argv: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VISIONSERVE_API_KEY", raising=False)
    # VisionServeError: the dispatcher prints it as one line and exits 1, no traceback
    with pytest.raises(VisionServeError, match=message):
        main([*argv, "--report-dir", str(tmp_path)])
