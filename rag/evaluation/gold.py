"""Gold Q&A files: one JSON object per line, validated as a whole so every bad row is reported at once.

    {"id": "q07", "question": "...", "answer": "...", "facts": [["rosneft"], ["lukoil"]],
     "sources": ["000_c7ab87e678e88968.txt"], "answerable": true,
     "history": ["an earlier question"], "split": "dev"}          # history and split optional

Benchmark rows (ClapNQ, SciFact) may carry no fact phrases (`"facts": []`): they are scored on retrieval,
abstention and, where they have reference answers, token F1 and ROUGE-L. Optional for them:
`"reference_answers": [...]` (human answers; `answer` alone counts as one) and
`"selected_sentences": [[...], ...]` (the source sentences each reference rests on; used to train the answerer).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from rag.errors import GoldFileError, InputRejected

_REQUIRED = ("id", "question", "answer", "facts", "sources", "answerable")
_OPTIONAL = ("history", "split", "reference_answers", "selected_sentences")


@dataclass(frozen=True)
class GoldItem:
    id: str
    question: str
    answer: str  # the reference answer, for people reading reports
    facts: list[list[str]]  # each inner list: alternative phrasings of one required fact
    sources: list[str]  # corpus files (relative paths or file names) that support the answer
    answerable: bool
    history: list[str] = field(default_factory=list)
    split: str = "unsplit"
    line: int = 0
    reference_answers: list[str] = field(default_factory=list)  # human answers to score token F1/ROUGE-L against
    selected_sentences: list[list[str]] = field(default_factory=list)

    @property
    def references(self) -> list[str]:
        """The reference answers to score an answer's wording against (none for unanswerable rows)."""
        if not self.answerable:
            return []
        return self.reference_answers or ([self.answer] if self.answer.strip() else [])


def read_input(path: Path, what: str, parse: Callable[[str], Any]) -> Any:
    """A user-named input file, parsed; InputRejected saying which file and why when it cannot be."""
    try:
        return parse(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputRejected(f"{what} {path} does not exist") from None
    except (OSError, ValueError) as exc:  # decoding and parse errors (JSON, TOML) are ValueErrors
        raise InputRejected(f"cannot read {what} {path}: {exc}") from None


def load_gold(path: Path, corpus_files: Iterable[str] | None = None) -> list[GoldItem]:
    """Read and validate a gold file. With `corpus_files`, every source must name one of them."""
    path = Path(path)
    lines = read_input(path, "gold file", str.splitlines)
    known = None if corpus_files is None else set(corpus_files)
    items, problems, seen = [], [], {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        row_problems = _check_row(line, known)
        if row_problems:
            problems += [(number, p) for p in row_problems]
            continue
        item = _item(json.loads(line), number)
        if item.id in seen:
            problems.append((number, f"id {item.id!r} is already used on line {seen[item.id]}"))
            continue
        seen[item.id] = number
        items.append(item)
    if not items and not problems:
        problems.append((1, "the file has no rows"))
    if problems:
        raise GoldFileError(path, problems)
    return items


def _check_row(line: str, known_files: set[str] | None) -> list[str]:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        return [f"not valid JSON ({exc.msg} at column {exc.colno})"]
    if not isinstance(row, dict):
        return [f"expected a JSON object, got {type(row).__name__}"]
    problems = [f"missing field {name!r}" for name in _REQUIRED if name not in row]
    problems += [f"unknown field {name!r} (expected {', '.join(_REQUIRED + _OPTIONAL)})"
                 for name in row if name not in _REQUIRED + _OPTIONAL]
    problems += _type_problems(row)
    if problems:
        return problems
    return _meaning_problems(row, known_files)


def _type_problems(row: dict[str, Any]) -> list[str]:
    expectations = [
        ("id", _nonempty_str, "a non-empty string"),
        ("question", _nonempty_str, "a non-empty string"),
        ("answer", lambda v: isinstance(v, str), "a string"),
        ("answerable", lambda v: isinstance(v, bool), "true or false"),
        ("facts", lambda v: isinstance(v, list) and all(
            isinstance(f, list) and f and all(_nonempty_str(p) for p in f) for f in v),
         "a list of non-empty lists of phrasings, e.g. [[\"rosneft\"], [\"two-hour\", \"two hour\"]]"),
        ("sources", lambda v: isinstance(v, list) and all(_nonempty_str(s) for s in v), "a list of file names"),
        ("history", lambda v: isinstance(v, list) and all(_nonempty_str(q) for q in v), "a list of questions"),
        ("split", _nonempty_str, "a non-empty string such as \"dev\" or \"test\""),
        ("reference_answers", lambda v: isinstance(v, list) and all(isinstance(a, str) for a in v),
         "a list of answers"),
        ("selected_sentences", lambda v: isinstance(v, list) and all(
            isinstance(g, list) and all(isinstance(t, str) for t in g) for g in v), "a list of lists of sentences"),
    ]
    return [f"{name!r} must be {what}, got {json.dumps(row[name])[:60]}"
            for name, ok, what in expectations if name in row and not ok(row[name])]


def _meaning_problems(row: dict[str, Any], known_files: set[str] | None) -> list[str]:
    problems = []
    if row["answerable"]:
        # Facts may be empty (benchmark rows): such a row is scored on retrieval, abstention and references.
        if not row["sources"]:
            problems.append("an answerable row needs at least one source")
    elif row["facts"] or row["sources"] or row.get("reference_answers"):
        problems.append("an unanswerable row (\"answerable\": false) must have no facts, sources or reference answers")
    if known_files is not None:
        problems += [f"source {s!r} is not a file in the corpus" for s in row["sources"]
                     if not any(matches(s, f) for f in known_files)]
    return problems


def _item(row: dict[str, Any], line: int) -> GoldItem:
    return GoldItem(id=row["id"], question=row["question"], answer=row["answer"], facts=row["facts"],
                    sources=row["sources"], answerable=row["answerable"], history=row.get("history", []),
                    split=row.get("split", "unsplit"), line=line,
                    reference_answers=row.get("reference_answers", []),
                    selected_sentences=row.get("selected_sentences", []))


def _nonempty_str(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def matches(gold_source: str, corpus_file: str) -> bool:
    """Whether a gold source names a corpus file: by its path relative to the corpus, or its trailing part."""
    gold, corpus = Path(gold_source).as_posix().strip("/"), Path(corpus_file).as_posix()
    return corpus == gold or corpus.endswith("/" + gold)
