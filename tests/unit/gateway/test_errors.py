"""The gateway's image errors: one name each, and the decode worker's replies map back to them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway import decode_pool, decode_worker
from gateway.errors import BadImage, ImageTooLarge, UnsupportedImage, error_body
from visionserve import imaging
from visionserve.errors import ImageError, InvalidVideo, UnsupportedVideo, VideoTooLarge


def test_the_gateways_400_image_error_is_not_the_decoders() -> None:
    assert BadImage is not imaging.InvalidImage
    assert not issubclass(BadImage, ValueError) and not issubclass(imaging.InvalidImage, ImageError)
    # the wire stays as clients know it: code and message
    assert error_body(BadImage("the image is empty (0 bytes)", code="empty_image")) == {
        "error": {"code": "empty_image", "message": "the image is empty (0 bytes)"}
    }
    assert (BadImage.error_code, BadImage.code) == (400, "invalid_image")


@pytest.mark.parametrize(
    "cls", [BadImage, ImageTooLarge, UnsupportedImage, InvalidVideo, VideoTooLarge, UnsupportedVideo]
)
def test_a_decode_worker_reply_names_a_class_the_pool_raises(cls: type[ImageError]) -> None:
    assert decode_pool._ERRORS[cls.__name__] is cls


def test_the_worker_names_only_classes_the_pool_knows() -> None:
    source = Path(decode_worker.__file__).read_text()
    named = set(re.findall(r'"error": "(\w+)"', source))
    assert named and named <= set(decode_pool._ERRORS)
