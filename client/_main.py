"""The client's subcommands: ``visionserve classify``, ``classify-video``, ``models``, ``health``.

Each is a ``fn(argv) -> exit code`` wired in ``visionserve.cli``. ClientErrors that stop a
whole command (server down, unknown model) propagate to the dispatcher, which prints one
line and exits 1; errors of single files are reported in the output and make the exit
code 1 without stopping the other files.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from client._async import AsyncTritonClient
from client._base import version_text
from client._batch import DEFAULT_CONCURRENCY, FileResult, classify_files
from client._config import (
    DEFAULT_GRPC_URL,
    DEFAULT_HTTP_URL,
    DEFAULT_TIMEOUT_S,
    PROTOCOLS,
    Protocol,
    default_url,
    normalize_url,
)
from client._errors import ClientError, ImageFileError, InvalidRequest, ModelNotFound
from client._files import find_images
from client._render import (
    classification_document,
    classification_table,
    health_document,
    health_table,
    models_document,
    models_table,
    video_document,
    video_table,
)
from client._sync import TritonClient
from visionserve.console import console as make_console

__all__ = ["classify_main", "classify_video_main", "health_main", "models_main"]

#: Below this many files a progress bar is noise.
PROGRESS_MIN_FILES = 2
_YES_NO = {True: Text("yes", style="green"), False: Text("no", style="bold red")}


def _connection_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--protocol", choices=PROTOCOLS, default="grpc", help="KServe v2 over gRPC or HTTP (default: grpc)"
    )
    parser.add_argument(
        "--url", help=f"Triton host:port (default: {DEFAULT_GRPC_URL} for grpc, {DEFAULT_HTTP_URL} for http)"
    )
    parser.add_argument(
        "--timeout-s",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help=f"limit of each call (default: {DEFAULT_TIMEOUT_S:g})",
    )


def _repository_key_args(parser: argparse.ArgumentParser) -> None:
    from serving.launcher import DEFAULT_REPOSITORY_KEY_PATH, REPOSITORY_KEY_ENV

    parser.add_argument(
        "--repository-key-file",
        type=Path,
        default=DEFAULT_REPOSITORY_KEY_PATH,
        metavar="PATH",
        help=f"key of a restricted model-repository API (`make up`), read when ${REPOSITORY_KEY_ENV} is unset "
        "(default: the file `visionserve serve`/`up` writes)",
    )


def _repository_key(args: argparse.Namespace) -> str | None:
    """The key TritonControl (``make export``) sends too: the environment variable, else the key file."""
    from serving.launcher import read_repository_key

    return read_repository_key(args.repository_key_file)


def _url(args: argparse.Namespace) -> str:
    try:
        return normalize_url(args.url) if args.url else default_url(args.protocol)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _print_json(document: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


# -- classify -------------------------------------------------------------------------------
def _classify_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="visionserve classify",
        description="Classify image files (or directories, recursively) through Triton.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files and/or directories")
    _connection_args(parser)
    parser.add_argument("--model", help="the model to ask (default: the first entry of models.yaml)")
    parser.add_argument(
        "--model-version", default="", metavar="N", help="model version (default: the one the server serves)"
    )
    parser.add_argument("--top-k", type=_positive_int, help="classes per image (default: models.yaml's top_k)")
    parser.add_argument(
        "--tta",
        default=None,
        metavar="VIEWS",
        help="test-time augmentation (models.yaml tta:, e.g. hflip): ask the model's <model>_<VIEWS> ensemble",
    )
    parser.add_argument(
        "--concurrency",
        type=_positive_int,
        default=DEFAULT_CONCURRENCY,
        help=f"requests in flight at once (default: {DEFAULT_CONCURRENCY})",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    return parser


def _catalog_defaults(model: str | None, top_k: int | None) -> tuple[str, int]:
    """Fill what the user left out from the catalog; read it only if something is missing."""
    if model is not None and top_k is not None:
        return model, top_k
    from visionserve.catalog import load_catalog

    catalog = load_catalog()
    return model or catalog.names[0], top_k or catalog.top_k


def _tta_model(model: str, view: str) -> str:
    """The Triton ensemble that serves ``model`` with TTA ``view`` (models.yaml ``tta:``)."""
    from visionserve.catalog import load_catalog

    spec = load_catalog().served.get(model)
    if spec is None or view not in spec.tta:
        offered = ", ".join(spec.tta) if spec is not None and spec.tta else "none"
        raise InvalidRequest(f"{model} offers no --tta {view} (models.yaml tta: {offered})")
    return spec.tta_ensemble(view)  # type: ignore[union-attr]


async def _run_classify(args: argparse.Namespace, model: str, top_k: int, err: Console) -> tuple[list[FileResult], str]:
    paths = find_images(args.paths)
    version = version_text(args.model_version)
    async with AsyncTritonClient(_url(args), protocol=args.protocol, timeout_s=args.timeout_s) as client:
        # Fail once, clearly, when the server or the model is missing, not once per file.
        weights = await client.weights(model)
        if not await client.is_ready(model, version):
            what = f"model {model!r} version {version}" if version else f"model {model!r}"
            raise ModelNotFound(f"{what} is not ready on {client.url}: `visionserve models` shows its state")
        progress = Progress(
            TextColumn("classifying"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
            disable=len(paths) < PROGRESS_MIN_FILES or not err.is_terminal,
        )
        with progress:
            task = progress.add_task("classify", total=len(paths))
            results = await classify_files(
                client,
                paths,
                model,
                top_k=top_k,
                version=version,
                concurrency=args.concurrency,
                on_done=lambda _result: progress.advance(task),
            )
    return results, weights


def classify_main(argv: list[str]) -> int:
    """``visionserve classify PATH... [--model] [--model-version] [--top-k] [--concurrency] [--json]``.

    Returns:
        0 when every file was classified, 1 when any failed.

    Raises:
        ClientError: the server is unreachable or the model is not served (nothing classified).
    """
    args = _classify_parser().parse_args(argv)
    model, top_k = _catalog_defaults(args.model, args.top_k)
    if args.tta:
        model = _tta_model(model, args.tta)
    err = make_console(stderr=True)
    results, weights = asyncio.run(_run_classify(args, model, top_k, err))
    context = {"model": model, "protocol": args.protocol, "url": _url(args), "weights": weights}
    if args.json:
        _print_json(classification_document(results, top_k=top_k, **context))
    else:
        make_console().print(classification_table(results, **context))
    return 0 if all(r.ok for r in results) else 1


# -- classify-video -------------------------------------------------------------------------
def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def classify_video_main(argv: list[str]) -> int:
    """``visionserve classify-video FILE [--every-seconds S | --keyframes-only] [--model] [--top-k] [--json]``.

    Frames are sampled here (``visionserve.video``, the gateway's limits) and classified
    through Triton in batches (``TritonClient.classify_video``).

    Returns:
        0 when the video was classified.

    Raises:
        ClientError: the server is unreachable or the model is not served.
        VideoError: the file is not a video this reads, is over the limits, or is corrupt.
    """
    from visionserve.video import Sampling

    parser = argparse.ArgumentParser(
        prog="visionserve classify-video",
        description="Classify a short video (MP4, MOV, WebM, AVI) frame by sampled frame through Triton.",
    )
    parser.add_argument("path", type=Path, metavar="FILE", help="the video file")
    _connection_args(parser)
    parser.add_argument("--model", help="the model to ask (default: the first entry of models.yaml)")
    parser.add_argument("--top-k", type=_positive_int, help="classes per frame (default: models.yaml's top_k)")
    sampling = parser.add_mutually_exclusive_group()
    sampling.add_argument(
        "--every-seconds", type=_positive_float, metavar="S", help="one frame every S seconds (default: 1)"
    )
    sampling.add_argument("--keyframes-only", action="store_true", help="classify the key frames instead")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    args = parser.parse_args(argv)
    model, top_k = _catalog_defaults(args.model, args.top_k)
    try:
        video = args.path.read_bytes()
    except OSError as exc:
        raise ImageFileError(f"cannot read {args.path}: {exc.strerror or exc}") from None
    chosen = Sampling(None, True) if args.keyframes_only else Sampling(args.every_seconds or Sampling().every_seconds)
    with TritonClient(_url(args), protocol=args.protocol, timeout_s=args.timeout_s) as client:
        weights = client.weights(model)
        result = client.classify_video(video, model, top_k=top_k, sampling=chosen)
    context = {"path": str(args.path), "protocol": args.protocol, "url": _url(args), "weights": weights}
    if args.json:
        _print_json(video_document(result, **context))
    else:
        make_console().print(video_table(result, **context))
    return 0


# -- models ---------------------------------------------------------------------------------
def models_main(argv: list[str]) -> int:
    """``visionserve models [--json] [--repository-key-file PATH]``: every model and version in the index.

    A restricted repository API (``make up``) is asked with the key publishing uses too
    (``$VISIONSERVE_TRITON_REPOSITORY_KEY``, else the key file), so the listing works wherever
    ``make export`` does.

    Returns:
        0 (the listing itself succeeded).

    Raises:
        ClientError: the server is unreachable; ``RepositoryRestricted`` when its repository
            API is restricted and the key is missing or wrong.
    """
    parser = argparse.ArgumentParser(
        prog="visionserve models", description="List the models, versions and readiness Triton reports."
    )
    _connection_args(parser)
    _repository_key_args(parser)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    key = _repository_key(args)
    with TritonClient(_url(args), protocol=args.protocol, timeout_s=args.timeout_s, repository_key=key) as client:
        statuses = client.models()
        weights: dict[str, str] = {}
        for name in sorted({s.name for s in statuses if s.ready}):
            try:
                weights[name] = client.weights(name)
            except ClientError:  # unloaded between the two calls: show the row without weights
                weights[name] = ""
    if args.json:
        _print_json(models_document(statuses, weights, url=client.url))
    else:
        make_console().print(models_table(statuses, weights, title=f"models on {args.protocol}://{client.url}"))
    return 0


# -- health ---------------------------------------------------------------------------------
def health_main(argv: list[str]) -> int:
    """``visionserve health [--model NAME]... [--json]``: liveness, readiness, per-model readiness.

    Returns:
        0 when the server is live and ready (and every ``--model`` is ready), 1 otherwise,
        including when the server cannot be reached.
    """
    parser = argparse.ArgumentParser(
        prog="visionserve health", description="Check that Triton is live and ready, and which models are."
    )
    _connection_args(parser)
    _repository_key_args(parser)
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME",
        help="also require this model to be ready (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = parser.parse_args(argv)
    url = _url(args)
    protocol: Protocol = args.protocol
    with TritonClient(url, protocol=protocol, timeout_s=args.timeout_s, repository_key=_repository_key(args)) as client:
        live = client.is_live()
        ready = live and client.is_ready()
        rows: list[tuple[str, str, bool]] = []
        if live:
            try:
                statuses = client.models()
            except ClientError:
                statuses = []
            rows = [(s.name, s.version, client.is_ready(s.name, s.version)) for s in statuses if s.version]
            rows += [(name, "", client.is_ready(name)) for name in args.model]
    required_ok = all(r for name, v, r in rows if name in args.model and not v)
    healthy = live and ready and required_ok
    if args.json:
        _print_json(health_document(url=url, protocol=protocol, live=live, ready=ready, models=rows, healthy=healthy))
        return 0 if healthy else 1
    out = make_console(highlight=False)
    out.print(Text.assemble(f"Triton at {protocol}://{url}: live ", _YES_NO[live], ", ready ", _YES_NO[ready]))
    if not live:
        out.print(Text.assemble(("cannot reach it", "red"), ": is it running? Start it with `make serve`"))
    if rows:
        out.print(health_table(rows, title="model readiness"))
    if not required_ok:
        missing = [name for name, v, r in rows if name in args.model and not v and not r]
        out.print(Text.assemble(("not ready: ", "bold red"), ", ".join(missing)))
    return 0 if healthy else 1
