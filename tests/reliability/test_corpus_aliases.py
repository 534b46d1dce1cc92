"""Issue 12, case 4: one alias must not empty an index. A symlink inside the corpus to another corpus
file, the same file named twice, and a file name that is not UTF-8 each cost at most that one path."""

from __future__ import annotations

import os

from rag import Pipeline


def test_a_symlink_to_another_corpus_file_is_one_document(settings, corpus):
    first = sorted(corpus.iterdir())[0]
    (corpus / "alias.txt").symlink_to(first)
    report = Pipeline(settings).ingest([corpus])
    assert report.documents == 2 and report.chunks > 0
    assert {"path": str(corpus / "alias.txt"), "reason": f"the same file as {first}"} in report.skipped
    assert Pipeline(settings).retrieve("sanctions", 3)


def test_the_same_file_named_twice_is_indexed_once(settings, corpus):
    path = sorted(corpus.iterdir())[0]
    report = Pipeline(settings).ingest([path, path, corpus / ".." / corpus.name / path.name])
    assert report.documents == 1 and report.chunks > 0


def test_a_file_name_that_is_not_utf8_is_skipped_with_a_reason(settings, corpus):
    raw = os.path.join(os.fsencode(corpus), b"caf\xe9.txt")
    with open(raw, "wb") as f:
        f.write(b"Hungarian officials said on Monday that the Budapest venue was ready for the summit.")
    report = Pipeline(settings).ingest([corpus])
    assert report.documents == 2 and report.chunks > 0
    [skip] = [s for s in report.skipped if "not valid UTF-8" in s["reason"]]
    assert skip["path"].endswith(".txt")
    assert Pipeline(settings).retrieve("sanctions", 3)
