"""The load tests' and benchmarks' image set: generated once, cached, identical when read back."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from visionserve import samples
from visionserve.samples import image_set, images_dir


def test_the_set_is_varied_cached_and_identical_when_read_back(cache_root: Path) -> None:
    first = image_set(10, seed=5)
    assert len(first) == 10
    assert {i.format for i in first} == {"JPEG", "PNG", "WEBP", "BMP", "GIF"}
    assert len({i.size for i in first}) > 2
    assert len({hashlib.sha256(i.data).hexdigest() for i in first}) == 10
    directory = images_dir(10, 5)
    assert directory.parent == cache_root and (directory / "manifest.json").exists()
    image_set.cache_clear()
    again = image_set(10, seed=5)  # read from disk this time
    assert again == first


def test_a_corrupted_cache_is_regenerated(cache_root: Path) -> None:
    original = image_set(5, seed=6)
    victim = images_dir(5, 6) / original[0].name
    victim.write_bytes(b"garbage")
    image_set.cache_clear()
    assert image_set(5, seed=6) == original


def test_an_empty_set_is_refused(cache_root: Path) -> None:
    with pytest.raises(ValueError):
        image_set(0)


def test_module_does_not_import_locust() -> None:
    # benchmarks import it: Locust would monkey-patch their process with gevent
    for module in Path(samples.__file__).parent.glob("*.py"):
        assert "locust" not in module.read_text(), module
