# Batch export of posters for printing: a ZIP of PNGs, one multi-page A4 PDF, or a directory.
# Inputs are (stem, png) pairs, typically "<code>-<name>"; pages are produced one at a time.
from __future__ import annotations

import io
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from PIL import Image

Progress = Callable[[int, int], None]  # (done, total); total is 0 when not known in advance
PDF_RESOLUTION = 150
PDF_CHUNK = 8  # pages decoded at once while writing the PDF
_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|\s]+')
_MAX_STEM = 80  # characters; Chinese is 3 bytes each in a ZIP entry name


def safe_stem(stem: str) -> str:
    """A file name stem that is safe on Windows, macOS and Linux and inside a ZIP."""
    cleaned = _UNSAFE.sub("_", stem).strip("._ ")[:_MAX_STEM].rstrip("._ ")
    return cleaned or "poster"


class _UniqueNames:
    """Hands out `<safe stem><suffix>`, numbering repeats (case-insensitively: Windows, macOS)."""

    def __init__(self, suffix: str) -> None:
        self.suffix = suffix
        self.seen: set[str] = set()

    def __call__(self, stem: str) -> str:
        base = safe_stem(stem)
        name, n = base, 1
        while name.casefold() in self.seen:
            n += 1
            name = f"{base}-{n}"
        self.seen.add(name.casefold())
        return name + self.suffix


def _total(posters: Iterable[tuple[str, bytes]]) -> int:
    return len(posters) if hasattr(posters, "__len__") else 0  # type: ignore[arg-type]


def _named(posters: Iterable[tuple[str, bytes]]) -> Iterator[tuple[str, bytes]]:
    unique = _UniqueNames(".png")
    return ((unique(stem), png) for stem, png in posters)


def build_zip(
    posters: Iterable[tuple[str, bytes]],
    out: BinaryIO | Path,
    progress: Progress | None = None,
) -> list[str]:
    """Write posters into a ZIP (stored: PNG is already compressed); returns the entry names."""
    total, names = _total(posters), []
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
        for done, (name, png) in enumerate(_named(posters), start=1):
            archive.writestr(name, png)
            names.append(name)
            if progress:
                progress(done, total)
    return names


def write_poster_dir(posters: Iterable[tuple[str, bytes]], out_dir: Path) -> list[Path]:
    """Write each poster as `<stem>.png` into `out_dir` (created if needed); returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, png in _named(posters):
        path = out_dir / name
        path.write_bytes(png)
        paths.append(path)
    return paths


def _chunks(posters: Iterable[tuple[str, bytes]], size: int) -> Iterator[list[bytes]]:
    chunk: list[bytes] = []
    for _, png in posters:
        chunk.append(png)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def build_pdf(
    posters: Iterable[tuple[str, bytes]],
    out: BinaryIO | Path,
    progress: Progress | None = None,
) -> int:
    """Write all posters as one A4 PDF, a page each at 150 dpi; returns the page count.

    Pages are added in chunks with Pillow's append mode, so memory holds a few decoded
    pages, not the whole batch. JPEG at quality 92 without chroma subsampling keeps text
    and code edges crisp at a fraction of the size of Pillow's uncompressed alternatives.
    """
    total, done = _total(posters), 0
    with tempfile.TemporaryFile() if not isinstance(out, Path) else out.open("w+b") as pdf:
        for chunk in _chunks(posters, PDF_CHUNK):
            pages = [Image.open(io.BytesIO(png)).convert("RGB") for png in chunk]
            pages[0].save(
                pdf,
                "PDF",
                save_all=True,
                append_images=pages[1:],
                append=done > 0,
                resolution=PDF_RESOLUTION,
                quality=92,
                subsampling=0,
            )
            done += len(pages)
            del pages
            if progress:
                progress(done, total)
        if done == 0:
            raise ValueError("no posters to put in the PDF")
        if not isinstance(out, Path):
            pdf.seek(0)
            shutil.copyfileobj(pdf, out)
    return done
