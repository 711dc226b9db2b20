"""Publish and switch a committee: one ensemble over its members' pinned versions, averaged.

A committee version ``K`` is ``<committee>/K/version.json`` (which member versions it runs,
with their weights) plus ``<committee>_mean/K/`` (the averaging step, the weights in its
config). Its ensemble runs, for every member, that member's own ``_preprocess`` and served
backbone at the pinned version, then the mean. Publishing a member afterwards does not touch
it: ``export.repository.pinned_elsewhere`` keeps the pinned member versions loaded, so the
committee answers exactly as before until ``make export MODEL=committee`` publishes a version
over the members' then-served versions.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from export.publish import TritonControl, commit_staged, next_version, remove_orphans, staging_dir, wait_ready
from export.repository import (
    LABELS_FILE,
    VERSION_FILE,
    VersionInfo,
    atomic_write,
    committed_versions,
    mean_config,
    pipeline_models,
    read_version,
    remove_version,
    served_version,
    stage_mean_model,
    tta_ensembles,
    write_composing_configs,
)
from visionserve.catalog import IMAGE_INPUT, PREPROCESSED, PROBABILITIES, Catalog, CommitteeSpec, ModelSpec
from visionserve.errors import RepositoryError

__all__ = ["committee_config", "export_committee", "switch_committee"]

Log = Callable[[str], None]


def _members(repo: Path, committee: CommitteeSpec) -> dict[str, tuple[ModelSpec, VersionInfo]]:
    """Each member's entry and served version; a RepositoryError names what is missing."""
    found = {}
    for spec in committee.member_specs:
        version = served_version(repo, spec)
        if version is None:
            raise RepositoryError(f"{committee.name}: member {spec.name} has no served version: export it first")
        info = read_version(repo, spec, version)
        if info.profile != "cpu":
            raise RepositoryError(f"{committee.name}: member {spec.name} v{version} is a {info.profile} version")
        found[spec.name] = (spec, info)
    return found


def _labels(repo: Path, committee: CommitteeSpec, members: dict[str, tuple[ModelSpec, VersionInfo]]) -> str:
    texts = {name: (repo / name / str(info.version) / LABELS_FILE).read_text() for name, (_, info) in members.items()}
    if len(set(texts.values())) != 1:
        raise RepositoryError(f"{committee.name}: members' labels differ ({', '.join(texts)}): nothing to average")
    return next(iter(texts.values()))


def committee_config(committee: CommitteeSpec, info: VersionInfo) -> mc.ModelConfig:
    """The committee's ensemble for ``info``: every member's pinned pipeline, then the mean."""
    cfg = mc.ModelConfig(name=committee.ensemble, platform="ensemble", max_batch_size=committee.max_batch_size)
    cfg.input.add(name=IMAGE_INPUT, data_type=mc.TYPE_STRING, dims=[1])
    cfg.output.add(name=PROBABILITIES, data_type=mc.TYPE_FP32, dims=[info.num_classes], label_filename=LABELS_FILE)
    cfg.version_policy.specific.versions.append(info.version)
    cfg.response_cache.enable = True
    cfg.parameters["weights"].string_value = info.weights
    for spec in committee.member_specs:
        pinned = int(info.members[spec.name]["version"])
        fmt = info.members[spec.name]["format"]
        in_name, out_name = spec.tensor_names(fmt)
        pre = cfg.ensemble_scheduling.step.add(model_name=spec.preprocess_model, model_version=pinned)
        pre.input_map[IMAGE_INPUT] = IMAGE_INPUT
        pre.output_map[PREPROCESSED] = committee.member_input(spec.name)
        net = cfg.ensemble_scheduling.step.add(model_name=spec.backbone_model(fmt), model_version=pinned)
        net.input_map[in_name] = committee.member_input(spec.name)
        net.output_map[out_name] = committee.member_output(spec.name)
    mean = cfg.ensemble_scheduling.step.add(model_name=committee.mean_model, model_version=info.version)
    for spec in committee.member_specs:
        mean.input_map[committee.member_output(spec.name)] = committee.member_output(spec.name)
    mean.output_map[PROBABILITIES] = PROBABILITIES
    return cfg


def _write(repo: Path, cfg: mc.ModelConfig) -> None:
    atomic_write(repo / cfg.name / "config.pbtxt", text_format.MessageToString(cfg))


def _mean(repo: Path, committee: CommitteeSpec, versions: list[int]) -> mc.ModelConfig:
    info = read_version(repo, committee, versions[-1])  # type: ignore[arg-type]
    names = [committee.member_output(m) for m in info.members]
    weights = [float(info.members[m]["weight"]) for m in info.members]
    return mean_config(committee.mean_model, names, weights, 1, versions, info.num_classes, committee.max_batch_size)


def export_committee(
    catalog: Catalog,
    committee: CommitteeSpec,
    repo: Path,
    *,
    control: TritonControl | None = None,
    keep_versions: int = 3,
    log: Log = print,
) -> VersionInfo:
    """Publish committee version N+1 over the members' served versions and serve it."""
    remove_orphans(repo, committee, log=log)  # type: ignore[arg-type]
    members = _members(repo, committee)
    labels = _labels(repo, committee, members)
    version = next_version(repo, committee)  # type: ignore[arg-type]
    staging = staging_dir(repo, committee, version)  # type: ignore[arg-type]
    kinds = {info.weights for _, info in members.values()}
    info = VersionInfo(
        version=version,
        weights=kinds.pop() if len(kinds) == 1 else "mixed",
        num_classes=committee.num_classes,
        formats=[],
        members={
            name: {"version": i.version, "weight": w, "format": spec.serve_format, "weights": i.weights}
            for (name, (spec, i)), w in zip(members.items(), committee.weights, strict=True)
        },
    )
    try:
        stage_mean_model(staging / committee.mean_model / str(version))
        version_dir = staging / committee.ensemble / str(version)
        version_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(version_dir / LABELS_FILE, labels)
        atomic_write(version_dir / VERSION_FILE, _json(info))
        commit_staged(staging, repo, committee, version)  # type: ignore[arg-type]
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    pins = ", ".join(f"{n} v{m['version']} x{m['weight']:.3f}" for n, m in info.members.items())
    log(f"[{committee.name}] published version {version}: {pins}")
    switch_committee(catalog, repo, committee, version, control, log=log)
    _prune(repo, committee, keep_versions, log)
    return info


def _json(info: VersionInfo) -> str:
    import json

    return json.dumps(asdict(info), indent=2) + "\n"


def _reload_members(
    repo: Path, committee: CommitteeSpec, extra: dict[str, int], control: TritonControl | None, loaded: set[str]
) -> None:
    """Member composing configs: their served versions, what the committee config pins, and ``extra``."""
    for spec in committee.member_specs:
        served = served_version(repo, spec)
        versions = [v for v in (served, extra.get(spec.name)) if v is not None]
        names = write_composing_configs(repo, spec, versions)
        if control is None:
            continue
        needed = set(pipeline_models(spec, read_version(repo, spec, served))) if served else set()
        for name in names:
            if name in loaded or name in needed:
                control.load(name)
        for ensemble in [spec.ensemble, *tta_ensembles(repo, spec)]:  # issue 4828: a composing reload unloads them
            if served is not None and ensemble in loaded and not control.ready(ensemble, served):
                control.load(ensemble)


def switch_committee(
    catalog: Catalog,
    repo: Path,
    committee: CommitteeSpec,
    version: int,
    control: TritonControl | None,
    log: Log = print,
) -> None:
    """Serve committee ``version``: its pinned member versions loaded first, then the ensemble."""
    if version not in committed_versions(repo, committee):  # type: ignore[arg-type]
        have = committed_versions(repo, committee)  # type: ignore[arg-type]
        raise RepositoryError(f"{committee.name} has no version {version} (versions on disk: {have or 'none'})")
    info = read_version(repo, committee, version)  # type: ignore[arg-type]
    for name, member in info.members.items():
        spec = catalog.get(name)
        if int(member["version"]) not in committed_versions(repo, spec):
            raise RepositoryError(f"{committee.name} v{version} pins {name} v{member['version']}, which was pruned")
    current = served_version(repo, committee)  # type: ignore[arg-type]
    loaded = control.loaded() if control is not None else set()
    pins = {name: int(m["version"]) for name, m in info.members.items()}
    _reload_members(repo, committee, pins, control, loaded)  # old pins (on disk) and new ones, both loaded
    _write(repo, _mean(repo, committee, sorted({v for v in (current, version) if v is not None})))
    if control is not None:
        control.load(committee.mean_model)
    labels = (repo / committee.ensemble / str(version) / LABELS_FILE).read_text()
    atomic_write(repo / committee.ensemble / LABELS_FILE, labels)
    _write(repo, committee_config(committee, info))
    if control is not None:
        control.load(committee.ensemble)
        wait_ready(control, committee.ensemble, version)
    _reload_members(repo, committee, {}, control, loaded | {committee.ensemble})  # only the new pins stay
    _write(repo, _mean(repo, committee, [version]))
    if control is not None:
        control.load(committee.mean_model)
        if not control.ready(committee.ensemble, version):  # issue 4828
            control.load(committee.ensemble)
        wait_ready(control, committee.ensemble, version)
    log(f"[{committee.name}] serves version {version}" + (" (live)" if control else ""))


def _prune(repo: Path, committee: CommitteeSpec, keep: int, log: Log) -> None:
    versions = committed_versions(repo, committee)  # type: ignore[arg-type]
    served = served_version(repo, committee)  # type: ignore[arg-type]
    removed = [v for v in versions if v not in set(versions[-keep:]) | {served}]
    for v in removed:
        remove_version(repo, committee, v)  # type: ignore[arg-type]
    if removed:
        log(f"  pruned {committee.name} versions {removed} (policy: keep the newest {keep} and the served one)")
