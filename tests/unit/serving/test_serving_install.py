"""The wheel's tritonserver is found, and the stubs get this interpreter's packages."""

from __future__ import annotations

import os
import stat
import sys
import sysconfig
from pathlib import Path

import pytest

from serving.backend_dir import assemble_backend_directory
from serving.install import find_install, server_environment
from visionserve.catalog import BACKENDS
from visionserve.errors import ServerError


def test_the_bundled_server_is_found() -> None:
    found = find_install()
    assert os.access(found.binary, os.X_OK)
    assert found.stub.parent.name == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert (found.cache_dir / "local" / "libtritoncache_local.so").exists()


def test_an_incomplete_wheel_names_what_is_missing() -> None:
    with pytest.raises(ServerError, match=r"python backend stub for Python 3\.99 \(.*3\.99"):
        find_install("3.99")


def test_environment_puts_this_interpreter_first() -> None:
    found = find_install()
    env = server_environment(found, {"PATH": "/usr/bin", "LD_LIBRARY_PATH": "/opt/lib", "OMP_NUM_THREADS": "4"})
    path = env["PATH"].split(os.pathsep)
    assert path[0] == str(Path(sys.executable).parent) and "/usr/bin" in path
    libs = env["LD_LIBRARY_PATH"].split(os.pathsep)
    assert libs[:2] == [sysconfig.get_config_var("LIBDIR"), str(found.lib_dir)] and libs[-1] == "/opt/lib"
    assert env["OMP_NUM_THREADS"] == "4"  # a user's choice is kept
    assert server_environment(found, {})["OMP_NUM_THREADS"] == "1"


def test_backend_directory_layout(tmp_path: Path) -> None:
    dest = assemble_backend_directory(tmp_path / "backends")
    stub = dest / "python" / "triton_python_backend_stub"
    assert stub.stat().st_mode & stat.S_IXUSR
    assert (dest / "python" / "libtriton_python.so").exists()
    assert (dest / "python" / "triton_python_backend_utils.py").exists()
    backends = {p.name for p in dest.iterdir()} - {"python"}
    assert backends == set(BACKENDS.values())  # the names the catalog's platforms map to
    for name in backends:
        assert (dest / name / "model.py").read_text().count("class TritonPythonModel") == 1
        assert (dest / name / "backend_common.py").exists()
    (dest / "onnxruntime" / "stale.py").write_text("")
    assemble_backend_directory(dest)  # re-assembling replaces, never mixes
    assert not (dest / "onnxruntime" / "stale.py").exists()
