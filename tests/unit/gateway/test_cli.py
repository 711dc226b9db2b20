"""`visionserve keys`: create prints the key once on the last line; list; revoke."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.auth import KeyStore
from gateway.cli import keys_main
from gateway.db import make_engine
from gateway.settings import GatewaySettings, load_pepper
from visionserve.settings import PROJECT_ROOT


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GATEWAY_STATE_DIR", str(tmp_path))
    for name in ("DATABASE_URL", "GATEWAY_API_KEY_PEPPER"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def store(state: Path) -> KeyStore:
    settings = GatewaySettings()
    return KeyStore(make_engine(settings.sqlalchemy_url), load_pepper(settings), cache_ttl_s=0)


def test_create_list_revoke(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert keys_main(["create", "--name", "alice", "--role", "admin"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    key = out[-1]
    identity = store(state).lookup(key)
    assert identity is not None and identity.user == "alice" and identity.role == "admin"
    assert keys_main(["list"]) == 0
    listing = capsys.readouterr().out
    assert identity.key_id in listing and "alice" in listing and "active" in listing and key not in listing
    assert keys_main(["revoke", identity.key_id]) == 0
    assert store(state).lookup(key) is None
    keys_main(["list"])
    assert "revoked" in capsys.readouterr().out


def test_revoke_by_name_and_errors(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys_main(["create", "--name", "bob"])
    keys_main(["create", "--name", "bob"])
    capsys.readouterr()
    assert keys_main(["revoke", "--name", "bob"]) == 0
    assert capsys.readouterr().out.count("revoked key") == 2
    with pytest.raises(SystemExit):
        keys_main(["revoke"])
    with pytest.raises(SystemExit):
        keys_main(["create", "--name", "x", "--role", "root"])


def test_through_the_visionserve_command(state: Path) -> None:
    env = {**os.environ, "GATEWAY_STATE_DIR": str(state)}
    run = subprocess.run([sys.executable, "-m", "visionserve", "keys", "create", "--name", "ci"],
                         capture_output=True, text=True, env=env, cwd=PROJECT_ROOT)  # fmt: skip
    assert run.returncode == 0, run.stderr
    key = run.stdout.strip().splitlines()[-1]
    assert store(state).lookup(key) is not None
    bad = subprocess.run([sys.executable, "-m", "visionserve", "keys", "revoke", "nope"],
                         capture_output=True, text=True, env=env, cwd=PROJECT_ROOT)  # fmt: skip
    assert bad.returncode == 1 and "no active key" in bad.stderr and "Traceback" not in bad.stderr
