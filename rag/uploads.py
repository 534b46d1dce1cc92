"""Articles added through the chat: checked like any corpus file, saved under a name we make.

The uploaded file name is never part of the path: it could be `../../etc/passwd`, a device name or
collide with an existing article. The saved name is derived from the content, so the same article
uploaded twice is one file.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from rag.config import Settings
from rag.documents import check_suffix, parse_bytes
from rag.errors import InputRejected
from rag.text import require_text

UPLOAD_PREFIX = "upload-"


def save_upload(filename: str, data: bytes, settings: Settings) -> tuple[Path, bool]:
    """Validate an uploaded article and write it into the corpus directory.

    Returns (the saved path, whether it was new). InputRejected says why a file was refused.
    """
    suffix = check_suffix(require_text(filename or "", "the file name"))
    if len(data) > settings.max_file_bytes:
        raise InputRejected(f"{filename} is {len(data):,} bytes, over the {settings.max_file_bytes:,}-byte limit")
    parse_bytes(data, suffix)  # empty, binary or unreadable files are refused before anything is written
    corpus = settings.corpus_dir
    corpus.mkdir(parents=True, exist_ok=True)
    target = corpus / f"{UPLOAD_PREFIX}{hashlib.sha256(data).hexdigest()[:16]}{suffix}"
    if target.exists():
        return target, False
    tmp = target.with_name(f".{target.name}.part")  # hidden: ingest skips dot files while it is written
    tmp.write_bytes(data)
    os.replace(tmp, target)
    return target, True
