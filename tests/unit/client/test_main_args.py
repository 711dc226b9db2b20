"""CLI argument handling that needs no server: defaults from the catalog, refused arguments."""

from __future__ import annotations

import pytest

from client import ImageFileError, InvalidRequest
from client._main import _catalog_defaults, classify_main, classify_video_main, health_main, models_main
from visionserve.catalog import load_catalog


def test_default_model_and_top_k_come_from_the_catalog() -> None:
    catalog = load_catalog()
    assert _catalog_defaults(None, None) == (catalog.names[0], catalog.top_k)
    assert _catalog_defaults("other", None) == ("other", catalog.top_k)
    assert _catalog_defaults(None, 2) == (catalog.names[0], 2)


def test_explicit_values_do_not_read_the_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VISIONSERVE_CATALOG", "/nonexistent/models.yaml")
    assert _catalog_defaults("m", 3) == ("m", 3)


@pytest.mark.parametrize(
    "argv",
    [
        [],  # no PATH
        ["a.jpg", "--top-k", "0"],
        ["a.jpg", "--concurrency", "-2"],
        ["a.jpg", "--protocol", "udp"],
        ["a.jpg", "--top-k", "many"],
    ],
)
def test_bad_classify_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        classify_main(argv)
    assert exit_.value.code == 2
    assert "usage: visionserve classify" in capsys.readouterr().err


def test_bad_model_version_is_refused_before_connecting() -> None:
    with pytest.raises(InvalidRequest, match="version"):
        classify_main(["a.jpg", "--model", "m", "--top-k", "1", "--model-version", "latest", "--url", "127.0.0.1:1"])


@pytest.mark.parametrize("main", [models_main, health_main])
def test_https_url_refused(main: object) -> None:
    with pytest.raises(InvalidRequest, match="scheme"):
        main(["--url", "https://h:1"])  # type: ignore[operator]


def test_classify_video_takes_one_sampling_and_a_readable_file(tmp_path) -> None:
    for bad in (["c.mp4", "--every-seconds", "1", "--keyframes-only"], ["c.mp4", "--every-seconds", "0"],
                ["c.mp4", "--every-seconds", "inf"]):  # fmt: skip
        with pytest.raises(SystemExit) as caught:
            classify_video_main(bad)
        assert caught.value.code == 2
    with pytest.raises(ImageFileError, match="cannot read"):
        classify_video_main([str(tmp_path / "missing.mp4"), "--model", "m", "--top-k", "1"])
