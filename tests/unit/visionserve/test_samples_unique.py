"""Unique bytes, same pixels: every format stays valid for decoders and the gateway's upload checks."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.uploads import UploadPolicy
from tests.fixtures.uploads import check_upload
from visionserve.imaging import decode_rgb
from visionserve.samples import UNIQUE_FORMATS, make_unique, sample_images

# two images of every format (sample_images cycles through the formats)
SAMPLES = list(sample_images(2 * len(UNIQUE_FORMATS), seed=11))


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: f"{s.format}-{s.size[0]}x{s.size[1]}")
def test_unique_bytes_decode_to_the_same_pixels_and_pass_the_upload_checks(sample) -> None:
    first = make_unique(sample.data, sample.format, "run-1")
    second = make_unique(sample.data, sample.format, "run-2")
    assert len({sample.data, first, second}) == 3
    assert b"run-1" in first
    reference = np.asarray(decode_rgb(sample.data))
    for variant in (first, second):
        assert np.array_equal(np.asarray(decode_rgb(variant)), reference)
        info = check_upload(variant, UploadPolicy())  # raises for anything appended or malformed
        assert info.format == sample.format


def test_every_sample_format_is_covered() -> None:
    assert {s.format for s in SAMPLES} == set(UNIQUE_FORMATS)


@pytest.mark.parametrize("token", ["", "x" * 251, "naïve"])
def test_bad_tokens_are_refused(token: str) -> None:
    with pytest.raises(ValueError, match="token"):
        make_unique(SAMPLES[0].data, SAMPLES[0].format, token)


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="TIFF"):
        make_unique(b"II*\x00", "TIFF", "t")
