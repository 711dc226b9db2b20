"""`visionserve export | rollback | versions` — what `make export` and `make rollback` run."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from export.publish import TritonControl, require_version, switch_version
from export.release import require_no_release
from export.repository import committed_versions, read_version, served_version
from export.weights import parse_weights
from visionserve.catalog import PROFILES, Catalog, CommitteeSpec, ModelSpec, load_catalog
from visionserve.errors import CatalogError
from visionserve.settings import DEFAULT_GRPC_PORT, repository_path

if TYPE_CHECKING:
    from export.pipeline import ExportResult

__all__ = ["export_main", "rollback_main", "versions_main"]

DEFAULT_SERVER_URL = f"127.0.0.1:{DEFAULT_GRPC_PORT}"


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repository", type=Path, default=None, help="model repository (default: model_repository/)")
    parser.add_argument(
        "--server-url",
        default=os.environ.get("TRITON_GRPC_URL", DEFAULT_SERVER_URL),
        help="gRPC address of a running tritonserver to switch live ('' to only write to disk)",
    )
    parser.add_argument("--catalog", type=Path, default=None, help="models.yaml to use")


def _control(url: str) -> TritonControl | None:
    control = TritonControl.connect(url)
    if url and control is None:
        print(f"(no tritonserver answering at {url}: writing to disk only; it serves the new version when started)")
    return control


def _export_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="visionserve export", description="Export models and publish version N+1.")
    parser.add_argument(
        "--model", default="", help="catalog model(s) or committee(s), comma-separated (default: all, committees last)"
    )
    parser.add_argument("--weights", default="auto", help="auto | imagenet | demo | /path/to/checkpoint")
    parser.add_argument("--labels", default=None, help="labels file (one class per line) for a checkpoint")
    parser.add_argument(
        "--profile",
        choices=PROFILES,
        default="cpu",
        help="cpu: Pillow preprocessing -> backbone; gpu: one model decoding and running fp16 on the GPU",
    )
    parser.add_argument("--keep", type=int, default=None, help="versions kept on disk (default: catalog keep_versions)")
    parser.add_argument(
        "--canary",
        type=float,
        default=None,
        metavar="PERCENT",
        help="publish as a canary on PERCENT %% of API keys beside the stable version (`visionserve release`)",
    )
    _common(parser)
    return parser


def export_main(argv: list[str]) -> int:
    parser = _export_parser()
    args = parser.parse_args(argv)
    if args.canary is not None and not 0 <= args.canary <= 100:
        parser.error("--canary is a percentage of API keys, 0 to 100")
    catalog = load_catalog(args.catalog)
    specs, committees = _selection(catalog, args.model)
    if (args.labels or args.weights not in {"auto", "imagenet", "demo"}) and len(specs) != 1:
        raise CatalogError("a checkpoint or a labels file applies to one model: add MODEL=<name>")
    repo = args.repository or repository_path()
    control = _control(args.server_url)
    start = time.perf_counter()
    try:
        results = _export_all(args, catalog, specs, committees, repo, control)
    finally:
        if control:
            control.close()
    _summary(results, time.perf_counter() - start, repo)
    return 0


def _export_all(
    args: argparse.Namespace,
    catalog: Catalog,
    specs: list[ModelSpec],
    committees: list[CommitteeSpec],
    repo: Path,
    control: TritonControl | None,
) -> list[ExportResult]:
    """Export the models, then the committees (whose members' versions they pin)."""
    from export.pipeline import export_model  # heavy imports only when exporting

    keep_versions = args.keep or catalog.keep_versions
    canary_weight = None if args.canary is None else args.canary / 100.0
    results = []
    for spec in specs:
        choice = parse_weights(args.weights, spec.checkpoint)
        results.append(
            export_model(
                spec,
                choice,
                repo,
                profile=args.profile,
                labels=args.labels,
                control=control,
                keep_versions=keep_versions,
                canary_weight=canary_weight,
            )
        )
    for committee in committees:
        from export.committee import export_committee

        export_committee(catalog, committee, repo, control=control, keep_versions=keep_versions)
    return results


def _selection(catalog: Catalog, given: str) -> tuple[list[ModelSpec], list[CommitteeSpec]]:
    """The models and committees ``--model`` names; every one of both when it names none."""
    names = [n.strip() for n in given.split(",") if n.strip() and n.strip() != "all"]
    if not names:
        return list(catalog.models.values()), list(catalog.committees.values())
    committees = [catalog.committees[n] for n in names if n in catalog.committees]
    models = [n for n in names if n not in catalog.committees]
    return (catalog.select(models) if models else []), committees


def _summary(results: list[ExportResult], seconds: float, repo: Path) -> None:
    from rich.table import Table

    from visionserve.console import console as make_console

    table = Table(title=f"exported into {repo}")
    for col in ("model", "version", "weights", "format", "size", "max |Δp| vs source", "time"):
        table.add_column(col)
    for r in results:
        for a in r.artifacts:
            weights = "[bold red]DEMO[/]" if r.weights == "demo" else r.weights
            table.add_row(
                r.model,
                str(r.version),
                weights,
                a.fmt,
                f"{a.size_bytes / 2**20:.1f} MiB",
                f"{a.max_abs_diff:.2e}",
                f"{a.seconds:.1f} s",
            )
    console = make_console()
    console.print(table)
    console.print(f"total export time: {seconds:.1f} s")


def rollback_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="visionserve rollback", description="Serve an earlier version again.")
    parser.add_argument("--model", required=True)
    parser.add_argument("--version", type=int, required=True)
    _common(parser)
    args = parser.parse_args(argv)
    catalog = load_catalog(args.catalog)
    repo = args.repository or repository_path()
    if args.model in catalog.committees:
        from export.committee import switch_committee

        control = _control(args.server_url)
        try:
            switch_committee(catalog, repo, catalog.committees[args.model], args.version, control)
        finally:
            if control:
                control.close()
        return 0
    spec = catalog.get(args.model)
    require_version(repo, spec, args.version)
    require_no_release(repo, spec)
    control = _control(args.server_url)
    try:
        switch_version(repo, spec, args.version, control)
    finally:
        if control:
            control.close()
    print(f"{spec.ensemble} now serves version {args.version}")
    return 0


def _agreement(quantization: dict[str, dict]) -> str:
    """``0.995 (200 images)`` per INT8 format, ``REFUSED`` when it was below the threshold."""
    cells = []
    for fmt, figures in quantization.items():
        mark = "" if figures.get("accepted", True) else " REFUSED"
        cells.append(f"{fmt} {figures['top1_agreement']:.3f} ({figures['images']} images){mark}")
    return "; ".join(cells)


def versions_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="visionserve versions", description="List model versions on disk.")
    _common(parser)
    args = parser.parse_args(argv)
    from rich.table import Table

    from visionserve.console import console as make_console

    repo = args.repository or repository_path()
    table = Table(title=str(repo))
    columns = (
        "model", "version", "served", "profile", "weights", "classes", "formats", "int8 agreement", "created",
    )  # fmt: skip
    for col in columns:
        table.add_column(col)
    for spec in load_catalog(args.catalog).served.values():
        served = served_version(repo, spec)  # type: ignore[arg-type]
        for v in committed_versions(repo, spec):  # type: ignore[arg-type]
            info = read_version(repo, spec, v)  # type: ignore[arg-type]
            members = ", ".join(f"{n} v{m['version']}" for n, m in info.members.items())
            table.add_row(
                spec.name,
                str(v),
                "●" if v == served else "",
                info.profile,
                info.weights,
                str(info.num_classes),
                ",".join(info.formats) or members,
                _agreement(info.quantization),
                info.created,
            )
    make_console().print(table)
    return 0
