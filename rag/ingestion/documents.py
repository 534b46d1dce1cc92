"""Reading files into clean `Document`s: decoding, HTML, boilerplate removal, metadata, near-duplicates."""

from __future__ import annotations

import hashlib
import re
import sys
import tomllib
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

from rag.errors import InputRejected
from rag.text import content_terms, is_heading, sentence_spans, shingles

SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm")
_MINHASH_SCHEME = "affine32"  # pinned: signatures are stored in the manifest and compared across runs
_RULES_FILE = Path(__file__).resolve().parent.parent / "data" / "boilerplate.toml"
# Bump when reading or cleaning would make another text of the same file under the same rules: an ingest
# leaves a file unread when its size and mtime, this version and the rules are what they were.
CLEANING_VERSION = 1


@dataclass
class Document:
    source: str  # the path as ingested
    text: str  # cleaned text; every citation offset points into this
    title: str
    content_hash: str  # sha256 of the cleaned text
    publisher: str | None = None
    author: str | None = None
    date: str | None = None  # as the article states it
    dropped_lines: list[str] = field(default_factory=list)
    # Digests of its short heading-like lines (`short_line_keys`), kept in the manifest so that a later
    # ingest of a few files counts them as lines the index's other documents carry.
    short_lines: str = ""
    repeated_lines: str = ""  # of those, the ones other documents carried when it was cleaned


@dataclass(frozen=True)
class _Rules:
    chrome: tuple[re.Pattern, ...]
    footer: tuple[re.Pattern, ...]
    publisher_logo: re.Pattern
    publisher_in_footer: re.Pattern
    author_label: re.Pattern
    date_label: re.Pattern
    date_value: re.Pattern
    short_line_words: int


@lru_cache(maxsize=1)
def _rules() -> _Rules:
    raw = tomllib.loads(_RULES_FILE.read_text(encoding="utf-8"))
    compile_ = lambda p: re.compile(p, re.IGNORECASE)  # noqa: E731
    return _Rules(
        chrome=tuple(map(compile_, raw["chrome"])),
        footer=tuple(map(compile_, raw["footer"])),
        publisher_logo=compile_(raw["publisher_logo"]),
        publisher_in_footer=compile_(raw["publisher_in_footer"]),
        author_label=compile_(raw["author_label"]),
        date_label=compile_(raw["date_label"]),
        date_value=compile_(raw["date_value"]),
        short_line_words=int(raw["short_line_words"]),
    )


MAX_LINE_CHARS = 100_000  # a paragraph is a few thousand; a longer "line" is a data dump or minified markup


def read_text(path: Path, max_bytes: int) -> str:
    """The file's text, or InputRejected with the reason it cannot be used."""
    check_suffix(path.name)
    size = path.stat().st_size
    if size > max_bytes:
        raise InputRejected(f"file is {size:,} bytes, over the {max_bytes:,}-byte limit (RAG_MAX_FILE_BYTES)")
    return parse_bytes(path.read_bytes(), path.suffix)


def check_suffix(name: str) -> str:
    """The file type (lower-case suffix) if we can read it, else InputRejected naming what we can."""
    suffix = Path(name).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise InputRejected(f"unsupported file type {suffix or '(none)'!r}; supported: {', '.join(SUPPORTED_SUFFIXES)}")
    return suffix


def parse_bytes(data: bytes, suffix: str) -> str:
    """Text from a file's bytes (HTML reduced to its text), or InputRejected with the reason."""
    if not data.strip():
        raise InputRejected("file is empty")
    if b"\x00" in data[:8192]:
        raise InputRejected("file looks binary (contains NUL bytes)")
    text = _decode(data)
    if suffix.lower() in (".html", ".htm"):
        text = html_to_text(text)
    text = _drop_invisible(text)
    if not text.strip():
        raise InputRejected("file has no readable text")
    _check_line_lengths(text)
    return text


def _drop_invisible(text: str) -> str:
    """Without format characters (zero-width spaces and joiners, BOMs, soft hyphens, bidi overrides),
    which split words for search ("Bud\u200bapest") and can disguise text, and without control
    characters other than line breaks and tabs (terminal escapes, BEL, backspace)."""
    return text.translate(_invisible_table())


@lru_cache(maxsize=1)
def _invisible_table() -> dict[int, None]:
    return {cp: None for cp in range(sys.maxunicode + 1)
            if unicodedata.category(chr(cp)) in ("Cf", "Cc") and chr(cp) not in "\n\r\t\f"}


def _check_line_lengths(text: str) -> None:
    longest, number = max((len(line), i) for i, line in enumerate(text.splitlines(), start=1))
    if longest > MAX_LINE_CHARS:
        raise InputRejected(f"line {number} is {longest:,} characters long (the limit is {MAX_LINE_CHARS:,}): "
                            "this does not look like article text")


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f]")  # control characters but line breaks, tabs and form feeds


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        control = len(_CONTROL.findall(text))
        if control > len(text) * 0.01:
            raise InputRejected("file looks binary (too many control characters)")
        return text
    raise InputRejected("file is neither UTF-8 nor Windows-1252 text")


def html_to_text(html: str) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "nav", "header", "footer", "aside", "form", "svg", "iframe"]):
        tag.decompose()
    for heading in soup(["h1", "h2", "h3", "h4", "h5", "h6"]):
        heading.replace_with(f"\n\n{'#' * int(heading.name[1])} {heading.get_text(' ', strip=True)}\n\n")
    body = soup.body or soup
    return body.get_text("\n")


@lru_cache(maxsize=1)
def cleaning_id() -> str:
    """The cleaning rules' file and the cleaning's version, hashed."""
    return hashlib.sha256(_RULES_FILE.read_bytes() + f"|cleaning-{CLEANING_VERSION}".encode()).hexdigest()[:16]


def load_documents(paths: Iterable[Path], max_bytes: int, elsewhere: Iterable[str] = ()
                   ) -> tuple[list[Document], list[dict[str, str]]]:
    """Read and clean every file; one bad file is skipped with its reason and the rest carry on.
    `elsewhere`: see `clean_files`."""
    raw, skipped = read_files(paths, max_bytes)
    return clean_files(raw, elsewhere), skipped


def read_files(paths: Iterable[Path], max_bytes: int) -> tuple[dict[str, str], list[dict[str, str]]]:
    """Each readable file's text by its path as given, and a reason for each file that is not."""
    raw: dict[str, str] = {}
    skipped: list[dict[str, str]] = []
    for path in paths:
        try:
            raw[str(path)] = read_text(path, max_bytes)
        except InputRejected as exc:
            skipped.append({"path": str(path), "reason": str(exc)})
        except OSError as exc:
            skipped.append({"path": str(path), "reason": f"cannot read file: {exc.strerror or exc}"})
    return raw, skipped


def clean_files(raw: dict[str, str], elsewhere: Iterable[str] = ()) -> list[Document]:
    """Clean documents read together. A short heading-like line that two or more documents carry is
    site chrome. `elsewhere` holds the `short_lines` of the index's documents not read now, so an
    article ingested on its own (an upload, one new file) loses the chrome its site shares with the
    articles already indexed, exactly as it would in an ingest of the whole corpus."""
    keyed = {source: {line: _line_key(line) for line in _chrome_candidates(text)} for source, text in raw.items()}
    counts = line_counts([*(lines.values() for lines in keyed.values()), *(k.split() for k in elsewhere)])
    repeated = frozenset(line for lines in keyed.values() for line, key in lines.items() if counts[key] >= 2)
    docs = []
    for source, text in raw.items():
        doc = clean_document(source, text, repeated)
        doc.short_lines = " ".join(sorted(set(keyed[source].values())))
        doc.repeated_lines = repeated_keys(doc.short_lines, counts)
        docs.append(doc)
    return docs


def short_line_keys(text: str) -> str:
    """A raw text's `short_lines`: the digests of its short heading-like lines, space-separated."""
    return " ".join(sorted({_line_key(line) for line in _chrome_candidates(text)}))


def line_counts(documents: Iterable[Iterable[str]]) -> Counter[str]:
    """In how many documents each short line's digest occurs (each document's digests given once)."""
    counts: Counter[str] = Counter()
    for keys in documents:
        counts.update(set(keys))
    return counts


def repeated_keys(short_lines: str, counts: Counter[str]) -> str:
    """Of a document's `short_lines`, those two or more documents carry: what its cleaning counts as
    chrome (a title among them stays). The same raw text with the same of these cleans to the same text."""
    return " ".join(k for k in short_lines.split() if counts[k] >= 2)


def _chrome_candidates(text: str) -> set[str]:
    limit = _rules().short_line_words
    return {ln.strip() for ln in text.splitlines() if _is_short(ln, limit) and is_heading(ln)}


def _line_key(line: str) -> str:
    """A short digest of a line: 8 bytes make a chance collision between two lines of a 100k-document
    index about 1 in 10^8 (and it would only drop a line that looks like chrome)."""
    return hashlib.blake2b(line.encode("utf-8"), digest_size=8).hexdigest()


def _is_short(line: str, limit: int) -> bool:
    return 0 < len(line.split()) <= limit


def clean_document(source: str, raw: str, repeated: frozenset[str] = frozenset()) -> Document:
    rules = _rules()
    # Markdown headings glued into a paragraph ("... conflict. ## Next Section Rubio's ...") get their own line.
    raw = re.sub(r"[ \t]+(#{1,6} )", r"\n\n\1", raw.replace("\r\n", "\n").replace("\r", "\n"))
    lines = [part for ln in raw.split("\n") for part in _split_glued_heading(ln.rstrip()).split("\n")]
    kept: list[str] = []
    dropped: list[str] = []
    publisher = author = date = None
    seen_short: set[str] = set()
    in_footer = False
    i = 0
    while i < len(lines):
        line, stripped = lines[i], lines[i].strip()
        i += 1
        if not stripped:
            kept.append("")
            continue
        short = _is_short(stripped, rules.short_line_words)
        if any(p.search(stripped) for p in rules.footer):
            in_footer = True
            found = rules.publisher_in_footer.search(stripped)
            publisher = publisher or (found and found.group("name").rstrip("."))
            dropped.append(stripped)
            continue
        logo = rules.publisher_logo.match(stripped)
        if logo:
            publisher = publisher or logo.group("name").strip()
        name_follows = rules.author_label.match(stripped) and i < len(lines) and _looks_like_name(lines[i])
        if name_follows:
            author = lines[i].strip()
            dropped.extend([stripped, author])
            i += 1
            continue
        stated_date = _stated_date(rules, stripped, lines[i].strip() if i < len(lines) else "")
        if stated_date and not date:
            date, consumed = stated_date
            dropped.extend([stripped] + lines[i:i + consumed - 1])
            i += consumed - 1
            continue
        if (
            logo
            or (in_footer and short)
            or any(p.search(stripped) for p in rules.chrome)
            or (stripped in repeated and not _is_title(stripped, kept, raw))
            or (short and is_heading(stripped) and stripped in seen_short)
        ):
            dropped.append(stripped)
            continue
        if short:
            seen_short.add(stripped)
        kept.append(line)
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()
    return Document(
        source=source,
        text=text,
        title=_title(text),
        content_hash=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        publisher=publisher or None,
        author=author,
        date=date,
        dropped_lines=dropped,
    )


_HEADING_SMALL_WORDS = {"and", "of", "the", "in", "for", "on", "to", "a", "an", "with", "at", "by", "or", "&", "-", "—"}
_LEADING_WORDS = {"On", "In", "At", "For", "By", "After", "Before", "During", "Last", "This", "Since", "Until"}


def _split_glued_heading(line: str) -> str:
    """'## Rubio's Pivotal Role Rubio's influence in ...' -> heading and sentence on lines of their own.

    The heading is the Title-Case run after the '#'s; the sentence starts at the run's last
    capitalised word (or the one before it: 'On Wednesday, the ...'), or at an opening quote.
    """
    match = re.match(r"(#{1,6} )(.*)", line)
    if not match or len(line.split()) <= 15:
        return line
    tokens = list(re.finditer(r"\S+", match.group(2)))
    i = 0
    while i < len(tokens):
        word = tokens[i].group()
        after_comma = i > 0 and tokens[i - 1].group().endswith(",")
        if word[0] in "'\"“‘" or after_comma or not (word[0].isupper() or word in _HEADING_SMALL_WORDS):
            break
        i += 1
    if i == len(tokens) or i < 2:
        return line
    start = i if tokens[i].group()[0] in "'\"“‘" else i - 1
    if start == i - 1 and tokens[start].group().endswith(",") and tokens[start - 1].group() in _LEADING_WORDS:
        start -= 1
    if start < 1:
        return line
    cut = len(match.group(1)) + tokens[start].start()
    return line[:cut].rstrip() + "\n\n" + line[cut:]


def _stated_date(rules: _Rules, line: str, next_line: str) -> tuple[str, int] | None:
    """("22 October 2025", lines used) for "Date: 22 October 2025" or "Published:" + a date line."""
    label = rules.date_label.match(line)
    if not label:
        return None
    value = label.group("value").strip()
    if value:
        return (value, 1) if rules.date_value.match(value) else None
    return (next_line, 2) if rules.date_value.match(next_line) else None


def _is_title(line: str, kept: list[str], raw: str) -> bool:
    """A line repeated across documents is still a title when it opens the document and the text after it
    is about it (every content word recurs): passages of one encyclopedia article share their title,
    while site chrome ("Share this story") is not what the article talks about."""
    if any(part.strip() for part in kept):
        return False
    after = content_terms(raw[raw.find(line) + len(line):])
    return bool(content_terms(line)) and content_terms(line) <= after


def _looks_like_name(line: str) -> bool:
    parts = line.strip().split()
    return 1 <= len(parts) <= 5 and all(p[:1].isupper() for p in parts) and not line.strip().endswith(".")


def _title(text: str, limit: int = 100) -> str:
    first_line = next((line for line in text.splitlines() if line.strip()), "")
    if is_heading(first_line):
        return first_line.strip().lstrip("#").strip()
    spans = sentence_spans(text)
    first = spans[0].text if spans else text.strip()
    return first if len(first) <= limit else first[: limit - 1].rsplit(" ", 1)[0] + "…"


def minhash_signature(text: str) -> str:
    """A 128-value MinHash of the text's word 3-shingles, kept in the manifest so unchanged files need no
    re-read: little-endian uint32s in base64, one JSON string that every reader of the manifest parses
    at once (a JSON list of 128 numbers made the manifest ~2x larger and slower to read)."""
    import base64

    import numpy as np
    from datasketch import MinHash

    mh = MinHash(num_perm=128, scheme=_MINHASH_SCHEME)
    mh.update_batch([s.encode("utf-8") for s in shingles(text)])
    return base64.b64encode(np.asarray(mh.hashvalues, dtype="<u4").tobytes()).decode("ascii")


def _signature_values(signature: str | list[int]) -> Any:
    """The uint32 values of a stored signature (a list of ints in manifests written before the base64 form)."""
    import base64

    import numpy as np

    if isinstance(signature, str):
        return np.frombuffer(base64.b64decode(signature), dtype="<u4").astype(np.uint32)
    return np.array(signature, dtype=np.uint32)


def near_duplicate_groups(signatures: dict[str, str | list[int]], threshold: float) -> dict[str, list[str]]:
    """For each document, the others whose estimated 3-shingle Jaccard reaches `threshold`."""
    import numpy as np
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=128)
    values = {key: _signature_values(sig) for key, sig in sorted(signatures.items())}
    # One set of permutations for all: made per MinHash, they were a third of grouping 35k documents.
    permutations = MinHash(num_perm=128, scheme=_MINHASH_SCHEME).permutations
    hashes = {key: MinHash(scheme=_MINHASH_SCHEME, hashvalues=v, permutations=permutations) for key, v in values.items()}
    for key, mh in hashes.items():
        lsh.insert(key, mh)
    groups: dict[str, list[str]] = {}
    for key, mh in hashes.items():
        # LSH gives candidates; confirm with the estimate (the share of equal hash values, as
        # MinHash.jaccard, for all candidates at once) so the threshold means what it says.
        candidates = [o for o in lsh.query(mh) if o != key]
        if not candidates:
            continue
        shares = (np.stack([values[o] for o in candidates]) == values[key]).mean(axis=1)
        peers = [o for o, share in zip(candidates, shares) if share >= threshold]
        if peers:
            groups[key] = sorted(peers)
    return groups


def regroup_near_duplicates(signatures: dict[str, str | list[int]], threshold: float,
                            previous: dict[str, list[str]], changed: set[str]) -> dict[str, list[str]]:
    """What `near_duplicate_groups(signatures, threshold)` gives, from `previous` (its result before the
    documents in `changed` were added, edited or removed): only the changed documents are compared with
    the rest. The candidates are LSH's (a document sharing all values of any of the same bands), so the
    result is the same; each changed document costs ~10 ms at 35k documents, against ~8 s to group all
    of them again, which is what an ingest adding one document to a large index used to spend."""
    import numpy as np
    from datasketch import MinHashLSH

    keys = sorted(signatures)
    if not keys:
        return {}
    matrix = np.stack([_signature_values(signatures[k]) for k in keys])
    position = {k: i for i, k in enumerate(keys)}
    lsh = MinHashLSH(threshold=threshold, num_perm=128)
    groups = {k: [o for o in previous.get(k, []) if o not in changed and o in position] for k in keys if k not in changed}
    for key in sorted(changed & set(position)):
        mine = matrix[position[key]]
        candidate = np.zeros(len(keys), dtype=bool)
        for start, end in lsh.hashranges:
            candidate |= (matrix[:, start:end] == mine[start:end]).all(axis=1)
        candidate[position[key]] = False
        hits = np.flatnonzero(candidate)
        peers = [keys[j] for j, share in zip(hits, (matrix[hits] == mine).mean(axis=1)) if share >= threshold]
        groups[key] = peers
        for peer in peers:
            if peer not in changed:
                groups[peer].append(key)
    return {k: sorted(v) for k, v in groups.items() if v}
