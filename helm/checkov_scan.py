"""Run checkov's Kubernetes checks on rendered manifests.

Checkov runs as a subprocess (its import is heavy and it configures global logging) over a
temporary directory with one file per value set. Findings the chart accepts carry a
``checkov.io/skipN: CKV_ID=reason`` annotation in the template that renders them; a skip
without a reason is reported as a problem too. Nothing is downloaded (``--skip-download``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from helm._errors import ChartError

__all__ = ["CheckovReport", "run_checkov"]

#: A skip reason shorter than this is not an explanation.
MIN_REASON_CHARS = 15


@dataclass
class CheckovReport:
    """What checkov found.

    Args:
        passed: number of passed checks (over all resources and value sets).
        failed: "value set: resource: CKV_ID name" per failed check.
        skipped: (check id, reason) -> how many resources skip it.
    """

    passed: int = 0
    failed: list[str] = field(default_factory=list)
    skipped: Counter[tuple[str, str]] = field(default_factory=Counter)

    def problems(self) -> list[str]:
        out = list(self.failed)
        for (check, reason), _ in sorted(self.skipped.items()):
            if len(reason.strip()) < MIN_REASON_CHARS:
                out.append(
                    f"{check} is skipped without a reason (annotate `checkov.io/skipN: {check}=<why>`)"
                )
        return out


def _checkov_command() -> list[str]:
    exe = Path(sys.executable).with_name("checkov")
    if not exe.exists():
        raise ChartError("checkov is not installed in this environment (pip install checkov)")
    return [str(exe)]


def _reports(stdout: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(stdout)
    except json.JSONDecodeError:
        raise ChartError(f"checkov did not print a JSON report:\n{stdout[-2000:]}") from None
    reports = data if isinstance(data, list) else [data]
    return [r for r in reports if isinstance(r, dict) and "results" in r]


def run_checkov(manifests_by_set: dict[str, list[dict[str, Any]]], timeout_s: float = 300) -> CheckovReport:
    """Scan the manifests of every value set with checkov's Kubernetes framework.

    Args:
        manifests_by_set: value set name -> its parsed manifests.
        timeout_s: give up after this long.

    Returns:
        Passed count, failures and skips; ChartError when checkov itself cannot run.
    """
    with tempfile.TemporaryDirectory(prefix="visionserve-checkov-") as tmp:
        for name, docs in manifests_by_set.items():
            (Path(tmp) / f"{name}.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))
        env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
        cmd = [*_checkov_command(), "-d", tmp, "--framework", "kubernetes", "-o", "json", "--skip-download"]
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=timeout_s, env=env, check=False
            )
        except subprocess.TimeoutExpired:
            raise ChartError(f"checkov took longer than {timeout_s:.0f} s") from None
    if proc.returncode not in (0, 1):
        raise ChartError(f"checkov failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    report = CheckovReport()
    for rep in _reports(proc.stdout):
        results = rep["results"]
        report.passed += len(results.get("passed_checks", []))
        for check in results.get("failed_checks", []):
            value_set = Path(check.get("file_path", "")).stem
            report.failed.append(
                f"{value_set}: {check['resource']}: {check['check_id']} {check['check_name']}"
            )
        for check in results.get("skipped_checks", []):
            reason = (check.get("check_result") or {}).get("suppress_comment", "") or ""
            report.skipped[(check["check_id"], reason)] += 1
    if report.passed == 0 and not report.failed:
        raise ChartError("checkov ran no Kubernetes check: is the kubernetes framework available?")
    return report
