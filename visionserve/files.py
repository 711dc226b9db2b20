"""Copying model repositories cheaply: hard links where the file system allows, copies elsewhere.

A repository's files are never rewritten in place (publishing writes a new version directory
and renames it into place), so a hard link shares the bytes of a weights file safely between
the repository and a scratch or test copy of it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

__all__ = ["copy_repository", "link_or_copy"]


def link_or_copy(src: str | Path, dst: str | Path) -> None:
    """Hard-link ``src`` at ``dst``; copy it (with its metadata) where no link can be made, e.g. across devices."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def copy_repository(source: Path, target: Path, *, ignore: Callable[[str, list[str]], set[str]] | None = None) -> Path:
    """Copy the tree at ``source`` to ``target`` (which must not exist), every file linked or copied.

    Args:
        source: the repository.
        target: where the copy goes.
        ignore: what to leave out, as for ``shutil.copytree`` (e.g. ``shutil.ignore_patterns``).

    Returns:
        ``target``.
    """
    shutil.copytree(source, target, copy_function=link_or_copy, ignore=ignore)
    return target
