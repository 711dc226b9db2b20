"""Class labels: ImageNet's from torchvision's metadata, or a user's labels file."""

from __future__ import annotations

from pathlib import Path

from visionserve.errors import WeightsError

__all__ = ["imagenet_labels", "read_labels", "resolve_labels"]


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet class names in index order (shipped with torchvision, no download)."""
    from torchvision.models import ResNet18_Weights

    return list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def read_labels(path: Path) -> list[str]:
    """One label per non-empty line; a clear error for a missing or empty file."""
    try:
        lines = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines()]
    except FileNotFoundError:
        raise WeightsError(f"labels file not found: {path}") from None
    except UnicodeDecodeError:
        raise WeightsError(f"labels file is not UTF-8 text: {path}") from None
    labels = [line for line in lines if line]
    if len(labels) < 2:
        raise WeightsError(f"labels file {path} has {len(labels)} labels; at least 2 are needed")
    return labels


def resolve_labels(source: str | Path | None, num_classes: int) -> list[str]:
    """Labels from ``source`` ('imagenet', a path, or None → generic names) checked against the head."""
    if source in (None, ""):
        labels = imagenet_labels() if num_classes == 1000 else [f"class_{i}" for i in range(num_classes)]
    elif str(source) == "imagenet":
        labels = imagenet_labels()
    else:
        labels = read_labels(Path(source))
    if len(labels) != num_classes:
        raise WeightsError(
            f"labels ({source}) list {len(labels)} classes but the model has {num_classes} outputs; "
            "pass a labels file with one line per class (LABELS=path)"
        )
    return labels
