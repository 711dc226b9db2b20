"""The launcher refuses a stub interpreter whose numpy is 2.x (it corrupts tensors there)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from serving.install import check_stub_numpy
from visionserve.errors import ServerError


def test_this_interpreter_passes_with_its_numpy() -> None:
    import numpy

    assert check_stub_numpy(dict(os.environ)) == numpy.__version__


def _fake_python(tmp_path: Path, body: str) -> Path:
    exe = tmp_path / "python3"
    exe.write_text(f"#!/bin/sh\n{body}\n")
    exe.chmod(0o755)
    return exe


def test_numpy_2_in_the_stub_interpreter_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", str(_fake_python(tmp_path, "echo 2.5.2")))
    with pytest.raises(ServerError, match=r"numpy 2\.5\.2 .*corrupts tensors.*numpy<2"):
        check_stub_numpy(dict(os.environ))


def test_no_numpy_at_all_is_refused_with_its_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    body = "echo \"ModuleNotFoundError: No module named 'numpy'\" >&2; exit 1"
    monkeypatch.setattr(sys, "executable", str(_fake_python(tmp_path, body)))
    with pytest.raises(ServerError, match="cannot import numpy.*No module named 'numpy'"):
        check_stub_numpy(dict(os.environ))
