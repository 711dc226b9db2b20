"""Finding image files in the paths the user gives, and reading them with clear errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from client import IMAGE_EXTENSIONS, ImageFileError, find_images, read_image
from visionserve.imaging import ALLOWED_FORMATS


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_extensions_follow_the_accepted_formats() -> None:
    assert {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"} <= IMAGE_EXTENSIONS
    assert ".txt" not in IMAGE_EXTENSIONS and ".tiff" not in IMAGE_EXTENSIONS  # TIFF is not accepted
    assert "TIFF" not in ALLOWED_FORMATS


def test_directories_recursive_sorted_filtered(tmp_path: Path) -> None:
    b = _touch(tmp_path / "d" / "b.PNG")
    a = _touch(tmp_path / "d" / "a.jpg")
    nested = _touch(tmp_path / "d" / "sub" / "c.webp")
    _touch(tmp_path / "d" / "notes.txt")
    _touch(tmp_path / "d" / ".hidden.jpg")
    assert find_images([tmp_path / "d"]) == [a, b, nested]


def test_files_kept_as_given_in_order_without_duplicates(tmp_path: Path) -> None:
    text = _touch(tmp_path / "named.txt")
    img = _touch(tmp_path / "x.jpg")
    missing = tmp_path / "missing.jpg"
    assert find_images([str(text), missing, img, img]) == [text, missing, img]


def test_empty_directory_is_not_dropped(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert find_images([empty]) == [empty]
    with pytest.raises(ImageFileError, match="no image files"):
        read_image(empty)


def test_read(tmp_path: Path) -> None:
    assert read_image(_touch(tmp_path / "a.jpg", b"\xff\xd8data")) == b"\xff\xd8data"


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(ImageFileError, match="no such file") as missing:
        read_image(tmp_path / "nope.jpg")
    assert str(tmp_path / "nope.jpg") in str(missing.value)
    assert missing.value.detail == "no such file"
    with pytest.raises(ImageFileError, match="empty"):
        read_image(_touch(tmp_path / "empty.jpg", b""))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path: Path) -> None:
    path = _touch(tmp_path / "locked.jpg")
    path.chmod(0)
    with pytest.raises(ImageFileError, match="permission denied"):
        read_image(path)
