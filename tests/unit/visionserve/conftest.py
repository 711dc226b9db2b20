"""Every test here gets its own image-set cache (``$VISIONSERVE_IMAGES_DIR``), emptied before and after."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from visionserve.samples import image_set


@pytest.fixture(autouse=True)
def cache_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("VISIONSERVE_IMAGES_DIR", str(tmp_path))
    image_set.cache_clear()
    yield tmp_path
    image_set.cache_clear()
