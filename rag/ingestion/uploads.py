"""Articles added through the chat or the API: checked like any corpus file, kept in the data dir.

They live in `<data dir>/uploads/`, not in the corpus directory (which may be a git-tracked folder of
someone else's files), under their own file name made safe: only its last part (`../../etc/passwd.txt`
is `passwd.txt`), letters, digits, spaces, dots, dashes and underscores, no leading dot. The same
article uploaded twice is one file; another article with a name already taken gets `name-2.txt`.
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path, PureWindowsPath

from rag.config import Settings
from rag.ingestion.documents import check_suffix, parse_bytes
from rag.errors import InputRejected
from rag.text import require_text

NAME_CHARS = 100
_UNSAFE = re.compile(r"[^\w .-]+")


def save_upload(filename: str, data: bytes, settings: Settings) -> tuple[Path, bool]:
    """Validate an uploaded article and write it into the uploads folder.

    Returns (the saved path, whether it was new). InputRejected says why a file was refused.
    """
    suffix = check_suffix(require_text(filename or "", "the file name"))
    if len(data) > settings.max_file_bytes:
        raise InputRejected(f"{filename} is {len(data):,} bytes, over the {settings.max_file_bytes:,}-byte limit")
    parse_bytes(data, suffix)  # empty, binary or unreadable files are refused before anything is written
    folder = settings.uploads_dir
    folder.mkdir(parents=True, exist_ok=True)
    for existing in folder.iterdir():  # the same article again: the file it already is
        if existing.is_file() and existing.stat().st_size == len(data) and existing.read_bytes() == data:
            return existing, False
    stem = safe_stem(filename, suffix)
    target, n = folder / f"{stem}{suffix}", 1
    while target.exists():
        n += 1
        target = folder / f"{stem}-{n}{suffix}"
    tmp = target.with_name(f".{target.name}.part")  # hidden: ingest skips dot files while it is written
    tmp.write_bytes(data)
    os.replace(tmp, target)
    return target, True


def safe_stem(filename: str, suffix: str) -> str:
    """The uploaded name's last part without its suffix, made safe to use as a file name."""
    last = unicodedata.normalize("NFKC", PureWindowsPath(filename.replace("\x00", "")).name)  # on / and \ alike
    stem = last[: len(last) - len(suffix)] if last.lower().endswith(suffix) else last
    stem = _UNSAFE.sub("-", stem).strip(" .-_")[:NAME_CHARS].rstrip(" .-_")
    return stem or "upload"


def is_upload(source: str, settings: Settings) -> bool:
    return Path(source).resolve().parent == settings.uploads_dir.resolve()


def label(source: str, settings: Settings) -> str:
    """How a document is named to a reader: an upload by its file name, any other by its path."""
    return Path(source).name if is_upload(source, settings) else source
