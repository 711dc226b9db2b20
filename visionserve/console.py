"""One rich Console factory, so tables stay readable when output goes to a file or a pipe."""

from __future__ import annotations

import sys

from rich.console import Console

__all__ = ["PIPED_WIDTH", "console"]

#: Width used when the stream is not a terminal (rich would assume 80 and cut table columns).
PIPED_WIDTH = 120


def console(*, stderr: bool = False, **kwargs: object) -> Console:
    """A Console on stdout (or stderr) that is at least ``PIPED_WIDTH`` wide when not on a terminal."""
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else PIPED_WIDTH
    return Console(stderr=stderr, width=width, **kwargs)  # type: ignore[arg-type]
