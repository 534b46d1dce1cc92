"""8. Bad files: each gets a clear reason of its own, the rest is indexed, nothing indexed before is lost."""

from __future__ import annotations

import os

from rag import Pipeline

GOOD = "Officials in Zanzibar announced a new ferry timetable for the islands on Monday.\n\nThe ferries run hourly.\n"


def _write_bad_files(corpus, outside):
    (corpus / "empty.txt").write_bytes(b"")
    (corpus / "blank.md").write_text("  \n\n\t \n")
    (corpus / "binary.txt").write_bytes(bytes(range(256)) * 64)
    (corpus / "huge.txt").write_bytes(b"word " * 10_000_000)  # 50 MB
    (corpus / "one-line.txt").write_bytes(b"The talks went on " * 470_000)  # one 8 MB line
    secret = outside / "secret.txt"
    secret.write_text("Text outside the corpus that must never be indexed: OUTSIDE-MARKER.\n")
    os.symlink(secret, corpus / "link.txt")
    (corpus / "notes.exe").write_bytes(b"MZ")


def test_every_bad_file_has_its_reason_and_the_rest_is_indexed(settings, corpus, tmp_path):
    pipeline = Pipeline(settings)
    pipeline.ingest([corpus])
    before = {p.id for p in pipeline.retrieve("500% tariff on Russian oil buyers", k=3)}
    outside = tmp_path / "outside"
    outside.mkdir()
    _write_bad_files(corpus, outside)
    (corpus / "latin1.txt").write_bytes("Le président a annoncé une réunion à Genève lundi.".encode("cp1252"))
    (corpus / "hidden.txt").write_text("The Bud\u200bapest sum\u200cmit was can\u2060celled\ufeff after a phone call.\n")
    for folder in ("a", "b"):
        (corpus / folder).mkdir()
        (corpus / folder / "same.txt").write_text(f"Folder {folder} reports: {GOOD}")

    report = pipeline.ingest([corpus])

    reasons = {r["path"].rsplit("/", 1)[-1]: r["reason"] for r in report.skipped}
    assert reasons == {
        "empty.txt": "file is empty",
        "blank.md": "file is empty",
        "binary.txt": "file looks binary (contains NUL bytes)",
        "huge.txt": "file is 50,000,000 bytes, over the 10,000,000-byte limit (RAG_MAX_FILE_BYTES)",
        "one-line.txt": "line 1 is 8,460,000 characters long (the limit is 100,000): this does not look like article text",
        "link.txt": "symlink points outside the corpus directory",
        "notes.exe": "unsupported file type '.exe'",
    }
    sources = [s["source"] for s in pipeline.sources()]
    assert len(sources) == 2 + 4  # the two articles, latin1, hidden, a/same, b/same
    assert len({s.rsplit("/", 2)[-2] + "/same.txt" for s in sources if s.endswith("same.txt")}) == 2
    assert {p.id for p in pipeline.retrieve("500% tariff on Russian oil buyers", k=3)} == before
    assert "Genève" in pipeline.retrieve("réunion à Genève", k=1)[0].text
    hit = pipeline.retrieve("Budapest summit cancelled", k=1)[0]
    assert "Budapest summit was cancelled" in hit.text  # invisible characters dropped, the words whole again
    assert all("OUTSIDE-MARKER" not in p.text for p in pipeline.retrieve("OUTSIDE-MARKER text outside", k=10))


def test_a_file_that_turns_bad_keeps_its_indexed_chunks(settings, corpus):
    pipeline = Pipeline(settings)
    pipeline.ingest([corpus])
    before = pipeline.retrieve("500% tariff on Russian oil buyers", k=1)[0]
    (corpus / "002_f2e8e39dc4325990.txt").write_bytes(b"\x00\x01 now binary")
    report = pipeline.ingest([corpus])
    assert report.skipped[0]["reason"] == "file looks binary (contains NUL bytes)"
    assert report.removed == 0
    assert pipeline.retrieve("500% tariff on Russian oil buyers", k=1)[0].id == before.id
