"""Export CLI: clear errors, checkpoints, parity gate, killed exports, rollback and pruning.

Failed checks publish nothing; a killed export leaves no partial version.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from export.publish import prune
from export.repository import committed_versions, read_config, served_version
from visionserve.catalog import load_catalog
from visionserve.errors import ParityError
from visionserve.settings import PROJECT_ROOT

pytestmark = pytest.mark.integration

R18 = load_catalog().get("resnet18")


def _cli(*args: str, timeout_s: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", "visionserve", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
        timeout=timeout_s,
    )


def _export(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return _cli("export", "--repository", str(repo), "--server-url", "", *args)


def _rollback(repo: Path, version: str) -> subprocess.CompletedProcess:
    return _cli("rollback", "--repository", str(repo), "--server-url", "", "--model", "resnet18", "--version", version)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _resnet18_checkpoint(path: Path, classes: int, seed: int) -> Path:
    import torch
    import torchvision

    torch.manual_seed(seed)
    torch.save(torchvision.models.resnet18(weights=None, num_classes=classes).state_dict(), path)
    return path


def test_unknown_model_is_a_clear_error(tmp_path: Path) -> None:
    proc = _export(tmp_path / "repo", "--model", "vgg16", "--weights", "demo")
    assert proc.returncode == 1
    assert "unknown model 'vgg16'" in proc.stderr and "Traceback" not in proc.stderr


def test_missing_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    proc = _export(tmp_path / "repo", "--model", "resnet18", "--weights", str(tmp_path / "nope.pt"))
    assert proc.returncode == 1 and "checkpoint not found" in proc.stderr
    assert not (tmp_path / "repo").exists() or not any((tmp_path / "repo").iterdir())


def test_wrong_shape_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    import torch
    import torchvision

    state = torchvision.models.resnet34(weights=None).state_dict()  # deeper net: keys and shapes differ
    torch.save(state, tmp_path / "r34.pt")
    proc = _export(tmp_path / "repo", "--model", "resnet18", "--weights", str(tmp_path / "r34.pt"))
    assert proc.returncode == 1 and "does not fit torchvision.models.resnet18" in proc.stderr
    assert committed_versions(tmp_path / "repo", R18) == []


def test_labels_disagreeing_with_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    ckpt = _resnet18_checkpoint(tmp_path / "ten.pt", 10, seed=1)
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(f"kind {i}" for i in range(7)))
    proc = _export(tmp_path / "repo", "--model", "resnet18", "--weights", str(ckpt), "--labels", str(labels))
    assert proc.returncode == 1 and "10-class head but the labels list 7" in proc.stderr


def test_checkpoint_with_any_class_count(fresh_repository: Path, tmp_path: Path) -> None:
    ckpt = _resnet18_checkpoint(tmp_path / "ten.pt", 10, seed=2)
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(f"kind:{i}" for i in range(10)) + "\n")
    proc = _export(fresh_repository, "--model", "resnet18", "--weights", str(ckpt), "--labels", str(labels))
    assert proc.returncode == 0, proc.stderr
    assert committed_versions(fresh_repository, R18) == [1, 2] and served_version(fresh_repository, R18) == 2
    ensemble = (fresh_repository / "resnet18" / "config.pbtxt").read_text()
    assert "dims: 10" in ensemble and 'string_value: "checkpoint"' in ensemble
    assert (fresh_repository / "resnet18" / "labels.txt").read_text().splitlines()[3] == "kind:3"
    # rollback on disk serves version 1 again, with its own labels and class count
    proc = _rollback(fresh_repository, "1")
    assert proc.returncode == 0, proc.stderr
    assert served_version(fresh_repository, R18) == 1
    assert "dims: 1000" in (fresh_repository / "resnet18" / "config.pbtxt").read_text()
    bad = _rollback(fresh_repository, "9")
    assert bad.returncode == 1 and "no version 9" in bad.stderr


def test_failed_parity_check_publishes_nothing(fresh_repository: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import export.backbone as backbone
    from export.pipeline import export_model
    from export.weights import WeightsChoice

    real = backbone.load_runner

    def corrupt(fmt, artifact, **kw):  # noqa: ANN001, ANN003, ANN202
        run = real(fmt, artifact, **kw)
        return lambda batch: run(batch)[:, ::-1]  # a wrong artifact: classes reversed

    monkeypatch.setattr(backbone, "load_runner", corrupt)
    before = sorted(p.relative_to(fresh_repository) for p in fresh_repository.rglob("*"))
    with pytest.raises(ParityError, match="nothing published"):
        export_model(R18, WeightsChoice("demo"), fresh_repository, log=lambda _m: None)
    assert sorted(p.relative_to(fresh_repository) for p in fresh_repository.rglob("*")) == before
    assert not list(fresh_repository.parent.glob(".model_repository.staging/*"))


def _assert_consistent(repo: Path, when: str) -> None:
    """Whatever moment an export stopped at, the repository is one a restarted server loads.

    Every committed version is whole, and the served one is committed and served by every step.
    """
    versions = committed_versions(repo, R18)
    served = served_version(repo, R18)
    assert 1 in versions and served in versions, f"{when}: versions {versions}, served {served}"
    for name in [n for n in R18.triton_models if (repo / n).is_dir()]:  # <name>_gpu only for GPU versions
        config = read_config(repo / name / "config.pbtxt")
        for v in versions:
            assert (repo / name / str(v)).is_dir(), f"{when}: {name}/{v} is missing"
            if config.platform != "ensemble":  # an ensemble's version directory may be empty (<name>_hflip's is)
                assert any((repo / name / str(v)).iterdir()), f"{when}: {name}/{v} is empty"
        policy = set(config.version_policy.specific.versions)
        assert served in policy, f"{when}: {name} serves {sorted(policy)}, the ensemble pins {served}"


def test_killed_export_leaves_previous_version_intact(fresh_repository: Path) -> None:
    onnx_v1 = fresh_repository / "resnet18_onnx" / "1" / "model.onnx"
    digest = _digest(onnx_v1)
    cmd = [
        sys.executable,
        "-m",
        "visionserve",
        "export",
        "--repository",
        str(fresh_repository),
        "--server-url",
        "",
        "--model",
        "resnet18",
        "--weights",
        "demo",
    ]
    for delay_s in (3.0, 8.5, 10.5, 12.5):  # spans imports, export, parity, commit and switch
        proc = subprocess.Popen(
            cmd,
            cwd=PROJECT_ROOT,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay_s)
        finished = proc.poll() is not None
        if not finished:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        _assert_consistent(fresh_repository, f"killed at {delay_s}s" if not finished else "finished")
        assert _digest(onnx_v1) == digest
        if finished:
            break
    proc = _export(fresh_repository, "--model", "resnet18", "--weights", "demo")
    assert proc.returncode == 0, proc.stderr
    versions = committed_versions(fresh_repository, R18)
    assert served_version(fresh_repository, R18) == versions[-1] > 1
    for name in [n for n in R18.triton_models if (fresh_repository / n).is_dir()]:  # no orphan dirs
        on_disk = sorted(int(p.name) for p in (fresh_repository / name).iterdir() if p.name.isdigit())
        assert on_disk == versions, name


def test_prune_keeps_newest_and_served(fresh_repository: Path) -> None:
    from export.repository import VersionInfo, write_version_files

    for v in (2, 3, 4):  # fake committed versions (metadata only) to exercise the policy
        write_version_files(fresh_repository / "resnet18" / str(v), VersionInfo(v, "demo", 1000, ["onnx"]), ["a", "b"])
    removed = prune(fresh_repository, R18, keep=2, log=lambda _m: None)
    assert removed == [2]  # 3 and 4 are newest, 1 is served
    assert committed_versions(fresh_repository, R18) == [1, 3, 4]
