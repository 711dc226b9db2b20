"""CpuMeter: CPU seconds by role, read from /proc for real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.cpu import LOAD_GENERATOR, CpuMeter, spent

_BURN = (
    "import sys, time\nend = time.process_time() + float(sys.argv[1])\n"
    "while time.process_time() < end:\n    pass\ntime.sleep(60)\n"
)


def _burn(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_the_load_generator_alone() -> None:
    meter = CpuMeter()
    before = meter()
    _burn(0.2)
    used = spent(before, meter())
    assert set(used) == {LOAD_GENERATOR}
    assert 0.18 <= used[LOAD_GENERATOR] < 1.0


def test_a_stack_tree_is_split_into_triton_and_gateway(tmp_path: Path) -> None:
    # A stand-in for `visionserve up`: a child named tritonserver with a busy child of its own
    # (as the backend stubs are), and another busy child (as the gateway's server).
    (tmp_path / "tritonserver").symlink_to(sys.executable)
    (tmp_path / "burn.py").write_text(_BURN)
    (tmp_path / "triton.py").write_text(
        "import subprocess, sys\n"
        f"subprocess.Popen([sys.executable, {str(tmp_path / 'burn.py')!r}, '0.3'])\n"
        f"exec(open({str(tmp_path / 'burn.py')!r}).read().replace('sys.argv[1]', '0.1'))\n"
    )
    (tmp_path / "up.py").write_text(
        "import subprocess, sys, time\n"
        f"subprocess.Popen([{str(tmp_path / 'tritonserver')!r}, {str(tmp_path / 'triton.py')!r}])\n"
        f"subprocess.Popen([sys.executable, {str(tmp_path / 'burn.py')!r}, '0.2'])\n"
        "time.sleep(60)\n"
    )
    up = subprocess.Popen([sys.executable, str(tmp_path / "up.py")], start_new_session=True)
    try:
        meter = CpuMeter(up.pid)
        start = meter()
        used: dict[str, float] = {}
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            used = spent(start, meter())
            if used.get("triton", 0) >= 0.38 and used.get("gateway", 0) >= 0.19:
                break
            time.sleep(0.1)
        assert set(used) == {"triton", "gateway", LOAD_GENERATOR}
        assert 0.38 <= used["triton"] < 1.2  # tritonserver and its child: 0.1 + 0.3 s, plus start-up
        assert 0.19 <= used["gateway"] < 0.8
    finally:
        os.killpg(up.pid, signal.SIGKILL)
        up.wait()
