"""bench.gpu_bounds: its images are what its figures claim, and without a GPU it says so and stops."""

import io

import pytest
from PIL import Image

from bench import gpu_bounds


def test_its_jpegs_are_distinct_photo_sized_640x480_baseline_images() -> None:
    data = gpu_bounds.jpegs(n=8)
    assert len(set(data)) == 8
    for blob in data:
        with Image.open(io.BytesIO(blob)) as img:
            assert (img.format, img.size, img.mode) == ("JPEG", (640, 480), "RGB")
            assert not img.info.get("progressive")
    # grain on smooth colour: the entropy of a camera JPEG, not a flat test card
    assert 60_000 < sum(map(len, data)) / len(data) < 160_000


def test_without_a_gpu_it_refuses_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is here: the refusal is for machines without one")
    assert gpu_bounds.main([]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err


def test_side_by_side_rates_show_work_that_waits_for_the_other() -> None:
    """Two steps that can run together keep their rates; one holding what the other needs halves both."""
    import threading
    import time

    def sleeper() -> None:
        time.sleep(0.01)

    lock = threading.Lock()

    def locked() -> None:
        with lock:
            time.sleep(0.01)

    free = gpu_bounds.side_by_side([(sleeper, 1, lambda: None), (sleeper, 4, lambda: None)], 0.5)
    assert 60 < free[0] < 101 and 240 < free[1] < 404  # ~100 calls/s each; items per call scale the rate
    shared = gpu_bounds.side_by_side([(locked, 1, lambda: None), (locked, 1, lambda: None)], 0.5)
    assert sum(shared) < 101  # together no more than one alone
