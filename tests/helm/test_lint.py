"""`python -m helm.lint` passes on the chart, and each of its scanners fails on a bad input."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest

import helm.lint as lint
from helm.checkov_scan import run_checkov
from helm.dockerfiles import DOCKER_DIR, run_hadolint
from helm.kube_schemas import validate_manifests
from helm.schema import CHART_DIR

ROOT = CHART_DIR.parent.parent


def test_make_helm_lint_passes() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "helm.lint"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for step in ("[1/7]", "[7/7]", "checkov", "hadolint", "Kubernetes schema validation"):
        assert step in proc.stdout
    assert "helm-lint: all 7 steps passed" in proc.stdout
    assert "skipped by the chart: CKV_K8S_15, CKV_K8S_35, CKV_K8S_40, CKV_K8S_43" in proc.stdout


def test_lint_exits_non_zero_with_a_summary_when_a_step_fails(monkeypatch, capsys) -> None:
    monkeypatch.setitem(
        lint.STEPS, "values", ("always fails", lambda ctx: lint.StepResult(["broken on purpose"]))
    )
    assert lint.main(["--only", "values"]) == 1
    out = capsys.readouterr().out
    assert "- broken on purpose" in out and "helm-lint: FAILED: 1 problem(s) in values" in out


def test_lint_rejects_unknown_steps(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        lint.main(["--only", "values,bogus"])
    assert exit_.value.code == 2
    assert "unknown step(s) ['bogus']" in capsys.readouterr().err


def test_kube_validation_rejects_unknown_fields_and_wrong_types(default_render) -> None:
    manifests = copy.deepcopy(default_render.manifests)
    deployment = next(doc for _, doc in manifests if doc["kind"] == "Deployment")
    deployment["spec"]["replicas"] = "two"
    service = next(doc for _, doc in manifests if doc["kind"] == "Service")
    service["spec"]["ports"][0]["portt"] = 1
    problems = " | ".join(validate_manifests(manifests, "1.30.0"))
    assert "'two' is not of type 'integer'" in problems
    assert "'portt' was unexpected" in problems


def test_checkov_fails_an_insecure_pod_and_honours_reasoned_skips() -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "bad",
            "namespace": "visionserve",
            "annotations": {"checkov.io/skip1": "CKV_K8S_43=pinned by tag in this test"},
        },
        "spec": {
            "containers": [{"name": "c", "image": "busybox:1.36", "securityContext": {"privileged": True}}]
        },
    }
    report = run_checkov({"bad": [pod]})
    failed = " | ".join(report.failed)
    assert "CKV_K8S_16" in failed  # privileged container
    assert "CKV_K8S_43" not in failed
    assert ("CKV_K8S_43", "pinned by tag in this test") in report.skipped


def test_hadolint_flags_an_unpinned_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM python\nRUN pip install flask\nCMD python app.py\n")
    problems = " | ".join(run_hadolint([bad], config=DOCKER_DIR / "hadolint.yaml"))
    for code in ("DL3006", "DL3013", "DL3042", "DL3025"):
        assert code in problems
    assert run_hadolint(sorted(DOCKER_DIR.glob("*.Dockerfile"))) == []
