"""Requests built for load generators: the same as the client's own, the gateway's form as urllib3 writes it."""

from __future__ import annotations

import pytest
from urllib3.filepost import encode_multipart_formdata

from client import InvalidRequest, TritonClient, classification_request, classify_form


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_a_classification_request_is_the_one_the_client_sends(protocol: str) -> None:
    inputs, outputs = classification_request([b"\xff\xd8jpeg"], 5, protocol=protocol)  # type: ignore[arg-type]
    ours_in, ours_out = TritonClient(protocol=protocol)._classify_request([b"\xff\xd8jpeg"], 5)  # type: ignore[arg-type]

    def described(tensors: list) -> list:
        return [(t.name(), t.shape(), t.datatype()) for t in tensors]

    assert described(inputs) == described(ours_in)
    assert inputs[0].shape() == [1, 1] and inputs[0].datatype() == "BYTES"
    assert [type(o) for o in outputs] == [type(o) for o in ours_out]
    with pytest.raises(InvalidRequest):
        classification_request([b"x"], 0, protocol=protocol)  # type: ignore[arg-type]


def test_the_classify_form_is_what_urllib3_encodes() -> None:
    body, content_type = classify_form(b"\x89PNG...", model="resnet18", top_k=5, filename="a.png",
                                       content_type="image/png", boundary="b0und")  # fmt: skip
    fields = {"model": "resnet18", "top_k": "5", "image": ("a.png", b"\x89PNG...", "image/png")}
    assert (body, content_type) == encode_multipart_formdata(fields, boundary="b0und")
    _, random_type = classify_form(b"x", model="m", top_k=1)
    assert random_type.startswith("multipart/form-data; boundary=") and random_type != content_type
