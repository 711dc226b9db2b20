"""Find and read image files for classification, with errors that name the file.

Which extensions count as images is derived from what the ensembles accept
(``visionserve.imaging.ALLOWED_FORMATS``) through Pillow's extension registry, so adding a
format there adds its extensions here.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from PIL import Image

from client._errors import ImageFileError
from visionserve.imaging import ALLOWED_FORMATS

__all__ = ["IMAGE_EXTENSIONS", "find_images", "read_image"]

#: Lower-case file extensions (with the dot) of the image formats the ensembles accept.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    ext.lower() for ext, fmt in Image.registered_extensions().items() if fmt in ALLOWED_FORMATS
)


def _is_image_file(path: Path) -> bool:
    hidden = any(part.startswith(".") for part in path.parts[-1:])
    return path.suffix.lower() in IMAGE_EXTENSIONS and not hidden and path.is_file()


def find_images(paths: Iterable[str | Path]) -> list[Path]:
    """Expand files and directories (recursively) into the image files to classify.

    Every given path yields at least one entry, so nothing is dropped silently: a file is
    kept as given whatever its extension (it was named on purpose; a missing one fails in
    ``read_image``), a directory yields its image files (by extension, sorted, hidden files
    skipped) or, when it has none, itself, which ``read_image`` then reports.

    Args:
        paths: files and directories.

    Returns:
        Paths in the order given (a directory's files sorted), duplicates removed.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            images = sorted(p for p in path.rglob("*") if _is_image_file(p))
            found.extend(images or [path])
        else:
            found.append(path)
    return list(dict.fromkeys(found))


def read_image(path: str | Path) -> bytes:
    """The bytes of one image file.

    Raises:
        ImageFileError: the file is missing, a directory, unreadable or empty.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        problem = "no such file"
    except IsADirectoryError:
        problem = f"a directory with no image files (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})"
    except PermissionError:
        problem = "permission denied"
    except OSError as exc:
        problem = f"cannot read: {exc.strerror or exc}"
    else:
        if data:
            return data
        problem = "the file is empty"
    raise ImageFileError(f"{path}: {problem}", detail=problem)
