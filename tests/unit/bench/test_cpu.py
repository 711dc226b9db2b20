"""CpuMeter: CPU seconds by role, read from /proc for real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from bench.cpu import LOAD_GENERATOR, CpuMeter, isolate, pin, spent, stack_processes

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


def _fake_stack(tmp_path: Path) -> subprocess.Popen[bytes]:
    """A stand-in for `visionserve up`.

    One child is named tritonserver and has a busy child of its own (as the backend stubs are);
    another busy child plays the gateway's server.
    """
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
    return subprocess.Popen([sys.executable, str(tmp_path / "up.py")], start_new_session=True)


def _stop(up: subprocess.Popen[bytes]) -> None:
    os.killpg(up.pid, signal.SIGKILL)
    up.wait()


def test_a_stack_tree_is_split_into_triton_and_gateway(tmp_path: Path) -> None:
    up = _fake_stack(tmp_path)
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
        _stop(up)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="isolation needs 2 cores")
def test_isolate_pins_every_thread_of_each_role(tmp_path: Path) -> None:
    up = _fake_stack(tmp_path)
    mine = os.sched_getaffinity(0)
    try:
        deadline = time.monotonic() + 20  # wait for its three processes
        while len(psutil.Process(up.pid).children(recursive=True)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        plan = isolate(up.pid)
        assert plan["triton"] and plan["gateway"] == plan[LOAD_GENERATOR]
        assert not plan["triton"] & plan["gateway"] and plan["triton"] | plan["gateway"] == mine
        roles = list(stack_processes(psutil.Process(up.pid)))
        assert sorted(role for role, _ in roles) == ["gateway", "triton", "triton"]
        for role, process in [*roles, (LOAD_GENERATOR, psutil.Process())]:
            for thread in process.threads():
                assert os.sched_getaffinity(thread.id) == plan[role], (role, process.cmdline())
    finally:
        pin(psutil.Process(), mine)
        _stop(up)
