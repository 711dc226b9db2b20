"""Committee and test-time augmentation, served by the real tritonserver, against references.

The references are computed here from the plain models Triton serves: a committee's answer
must be the weighted mean of its members' answers on the same images (each member asked
directly at the version the committee pins), and ``<name>_hflip`` must be the mean of the plain
model on the image and on its mirror (mirrored here with Pillow). Seeded demo weights on real
sample images give members and views that disagree, so equal means are not luck.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from PIL import Image

from serving.launcher import TritonServer
from visionserve.catalog import PROBABILITIES, ModelSpec, load_catalog
from visionserve.samples import sample_images

pytestmark = pytest.mark.integration

CATALOG = load_catalog()
COMMITTEE = CATALOG.committee("committee")
# JPEGs large enough for the draft decode, and lossless formats: every decoder path
IMAGES = [s.data for s in sample_images(4, seed=71)] + [
    s.data for s in sample_images(2, seed=72, formats=("PNG",), sizes=((300, 420), (640, 480)))
]


def probabilities(url: str, model: str, images: list[bytes], version: int | str = "") -> np.ndarray:
    """Every class's probability for ``images`` in one request to ``model``."""
    batch = np.array([[d] for d in images], dtype=np.object_)
    tensor = grpcclient.InferInput("image", list(batch.shape), "BYTES")
    tensor.set_data_from_numpy(batch)
    with grpcclient.InferenceServerClient(url) as client:
        answer = client.infer(model, [tensor], model_version=str(version))
    return answer.as_numpy(PROBABILITIES)


def mirrored_png(spec: ModelSpec, data: bytes) -> bytes:
    """The image as the model decodes it (draft scale included), mirrored by Pillow, as a lossless PNG."""
    out = io.BytesIO()
    spec.pipeline().decode(data).transpose(Image.FLIP_LEFT_RIGHT).save(out, "PNG")
    return out.getvalue()


def test_committee_equals_the_weighted_mean_of_its_members(triton: TritonServer, exported_repository: Path) -> None:
    info = json.loads((exported_repository / "committee" / "1" / "version.json").read_text())
    assert list(info["members"]) == list(COMMITTEE.members)  # version.json records what it runs
    got = probabilities(triton.grpc_url, "committee", IMAGES)
    members = {
        name: probabilities(triton.grpc_url, name, IMAGES, version=m["version"]) for name, m in info["members"].items()
    }
    weights = {name: m["weight"] for name, m in info["members"].items()}
    assert sum(weights.values()) == pytest.approx(1.0)
    expected = sum(weights[n] * p.astype(np.float64) for n, p in members.items())
    np.testing.assert_allclose(got, expected, atol=2e-6, rtol=0)
    for name, p in members.items():  # non-trivial: every member answers otherwise than the committee
        assert np.abs(p - got).max() > 1e-3, name
    tops = {tuple(p.argmax(axis=1)) for p in members.values()}
    assert len(tops) > 1  # the members disagree on some top-1


@pytest.mark.parametrize("spec", CATALOG.models.values(), ids=CATALOG.names)
def test_hflip_equals_the_mean_of_the_image_and_its_mirror(triton: TritonServer, spec: ModelSpec) -> None:
    assert "hflip" in spec.tta
    got = probabilities(triton.grpc_url, spec.tta_ensemble("hflip"), IMAGES)  # one request, 2 rows per image
    plain = probabilities(triton.grpc_url, spec.ensemble, IMAGES)
    mirror = probabilities(triton.grpc_url, spec.ensemble, [mirrored_png(spec, d) for d in IMAGES])
    np.testing.assert_allclose(got, (plain.astype(np.float64) + mirror) / 2, atol=2e-6, rtol=0)
    assert np.abs(plain - mirror).max() > 1e-3  # the mirror is another input to the model
    assert got.shape == (len(IMAGES), spec.num_classes)


def test_hflip_runs_two_backbone_rows_per_image_in_one_request(triton: TritonServer) -> None:
    """Statistics extension: one TTA request of 3 images = 1 preprocess call and 6 backbone rows."""
    spec = CATALOG.get("resnet18")
    names = [spec.tta_ensemble("hflip"), spec.backbone_model(), spec.tta_mean_model("hflip")]

    def counts() -> dict[str, tuple[int, int]]:
        with grpcclient.InferenceServerClient(triton.grpc_url) as client:
            stats = client.get_inference_statistics(as_json=True)["model_stats"]
        return {s["name"]: (int(s["inference_count"]), int(s["execution_count"])) for s in stats if s["name"] in names}

    before = counts()
    images = [s.data for s in sample_images(3, seed=73)]
    probabilities(triton.grpc_url, spec.tta_ensemble("hflip"), images)
    after = counts()
    delta = {n: (after[n][0] - before.get(n, (0, 0))[0], after[n][1] - before.get(n, (0, 0))[1]) for n in names}
    assert delta[spec.tta_ensemble("hflip")] == (3, 1)
    assert delta[spec.backbone_model()][0] == 6  # the mirror rows ride in the same backbone call
    assert delta[spec.tta_mean_model("hflip")] == (6, 1)
