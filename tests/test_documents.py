"""Reading and cleaning: which lines each seed loses, metadata, bad files."""

import json
import re

import pytest
from conftest import SEEDS, TESTS

from rag.ingestion.documents import clean_document, html_to_text, load_documents, read_text
from rag.errors import InputRejected
from rag.text import sentence_spans

EXPECTED_DROPS = json.loads((TESTS / "data" / "dropped_lines.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def seed_docs():
    docs, skipped = load_documents(sorted(SEEDS.glob("*.txt")), 10_000_000)
    assert skipped == []
    return {d.source.rsplit("/", 1)[-1]: d for d in docs}


@pytest.mark.parametrize("name", sorted(EXPECTED_DROPS))
def test_each_seed_drops_exactly_its_chrome(seed_docs, name):
    # The reviewed list of lines each seed loses: site chrome, counters, credits, disclaimers, footers.
    assert seed_docs[name].dropped_lines == EXPECTED_DROPS[name]


@pytest.mark.parametrize("name", sorted(EXPECTED_DROPS))
def test_no_body_sentence_is_lost(seed_docs, name):
    raw = (SEEDS / name).read_text(encoding="utf-8")
    dropped = set(EXPECTED_DROPS[name])
    cleaned = re.sub(r"\s+", " ", seed_docs[name].text)
    for line in raw.splitlines():
        if line.strip() and line.strip() not in dropped:
            for sentence in sentence_spans(line.strip()):
                assert re.sub(r"\s+", " ", sentence.text.lstrip("# ")) in cleaned


def test_dropped_lines_are_chrome_not_prose():
    chrome_words = ("disclaimer", "risk warning", "follow us", "logo", "version", "read", "contents", "articles")
    for lines in EXPECTED_DROPS.values():
        for line in lines:
            assert len(line.split()) <= 15 or any(w in line.lower() for w in chrome_words), line


def test_metadata(seed_docs):
    assert seed_docs["001_9a746d18b83cd2b7.txt"].title == "Trump's Russia Policy Shift: Rubio's Influence and Pivotal Role"
    assert seed_docs["001_9a746d18b83cd2b7.txt"].publisher == "Markets.com"
    assert seed_docs["002_f2e8e39dc4325990.txt"].author == "Oleksandr Bulin"
    assert seed_docs["004_936fb12f57722203.txt"].title.startswith("US officials confirm")
    # no heading line: the first sentence, trimmed
    assert seed_docs["000_c7ab87e678e88968.txt"].title.startswith("For months, former US President")
    assert len(seed_docs["000_c7ab87e678e88968.txt"].title) <= 100
    assert all(len(d.content_hash) == 64 for d in seed_docs.values())


def test_glued_markdown_headings_get_their_own_line(seed_docs):
    lines = seed_docs["000_c7ab87e678e88968.txt"].text.splitlines()
    assert "## Rubio's Pivotal Role" in lines
    assert "## New Sanctions and Future Possibilities" in lines
    assert any(line.startswith("On Wednesday, the Trump administration imposed sanctions") for line in lines)


def test_html_is_parsed_not_regexed(tmp_path):
    page = tmp_path / "a.html"
    page.write_text("<html><head><script>var x=1</script></head><body><nav>Home | World</nav>"
                    "<h1>Summit off</h1><p>The summit was cancelled on Tuesday.</p><footer>© Site</footer></body></html>")
    text = read_text(page, 10_000)
    assert "var x" not in text and "Home | World" not in text and "© Site" not in text
    doc = clean_document(str(page), text)
    assert doc.title == "Summit off"
    assert "The summit was cancelled on Tuesday." in doc.text
    assert "&amp;" not in html_to_text("<p>Tom &amp; Jerry</p>")


def test_repeated_short_lines_across_documents_are_dropped(tmp_path):
    for name, body in (("a.txt", "Share this story\n\nAlpha fell by two points on Monday."),
                       ("b.txt", "Share this story\n\nBeta rose by three points on Friday.")):
        (tmp_path / name).write_text(body)
    docs, _ = load_documents(sorted(tmp_path.glob("*.txt")), 10_000)
    assert all("Share this story" in d.dropped_lines for d in docs)
    assert all("Share this story" not in d.text for d in docs)


def test_a_line_other_indexed_documents_carry_is_chrome_in_a_document_read_alone(tmp_path):
    (tmp_path / "a.txt").write_text("Harbour Ledger Markets Desk\n\nPort volumes fell by two percent in March.")
    (tmp_path / "c.txt").write_text("Harbour Ledger Markets Desk\n\nFuel prices at the port rose again.")
    [indexed], _ = load_documents([tmp_path / "a.txt"], 10_000)
    [alone], _ = load_documents([tmp_path / "c.txt"], 10_000)
    [beside], _ = load_documents([tmp_path / "c.txt"], 10_000, elsewhere=[indexed.short_lines])
    assert "Harbour Ledger Markets Desk" in alone.text  # one document: nothing says the line is chrome
    assert "Harbour Ledger Markets Desk" not in beside.text and beside.text == "Fuel prices at the port rose again."
    assert beside.short_lines == alone.short_lines == indexed.short_lines != ""  # the line's digest, kept


def test_a_title_shared_by_passages_of_one_article_stays_their_title(tmp_path):
    for name, body in (("a.txt", "Mount Logan\n\nMount Logan is the highest mountain in Canada."),
                       ("b.txt", "Mount Logan\n\nThe first ascent of Mount Logan was in 1925.")):
        (tmp_path / name).write_text(body)
    docs, _ = load_documents(sorted(tmp_path.glob("*.txt")), 10_000)
    assert [d.title for d in docs] == ["Mount Logan", "Mount Logan"]
    assert all(d.text.startswith("Mount Logan\n") for d in docs)


@pytest.mark.parametrize("name, content, reason", [
    ("empty.txt", b"", "empty"),
    ("blank.txt", b"  \n\t \n", "empty"),
    ("binary.txt", b"\x00\x01\x02PNG\x00" * 50, "binary"),
    ("notes.pdf", b"%PDF-1.4 something", "unsupported file type"),
    ("big.txt", b"word " * 3000, "limit"),
])
def test_bad_files_get_a_reason(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputRejected, match=reason):
        read_text(path, max_bytes=10_000)


def test_non_utf8_falls_back_to_windows_1252(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("Zelensky’s café — a “deal”.".encode("cp1252"))
    assert read_text(path, 10_000) == "Zelensky’s café — a “deal”."


@pytest.mark.parametrize("header, date", [
    ("Date: 22 October 2025", "22 October 2025"),
    ("Published:\nOctober 22, 2025 14:05", "October 22, 2025 14:05"),
    ("Updated: 2025-10-22", "2025-10-22"),
])
def test_stated_date_is_recorded_and_dropped(header, date):
    doc = clean_document("a.txt", f"Summit off\n{header}\n\nThe summit was cancelled on Tuesday after a call.")
    assert doc.date == date
    assert date not in doc.text and "The summit was cancelled" in doc.text


def test_a_date_label_without_a_date_keeps_the_next_line():
    doc = clean_document("a.txt", "Title here\nDate:\nThe summit was cancelled on Tuesday after a call.")
    assert doc.date is None and "The summit was cancelled" in doc.text


def test_signatures_are_compact_and_old_list_signatures_still_group():
    """Signatures are stored as one base64 string; manifests written with a list of 128 ints still work."""
    import base64

    import numpy as np

    from rag.config import Settings
    from rag.ingestion.documents import minhash_signature, near_duplicate_groups

    text = (SEEDS / "000_c7ab87e678e88968.txt").read_text()
    twin = (SEEDS / "001_9a746d18b83cd2b7.txt").read_text()
    other = (SEEDS / "004_936fb12f57722203.txt").read_text()
    a, b, c = minhash_signature(text), minhash_signature(twin), minhash_signature(other)
    assert isinstance(a, str) and len(a) < 700
    as_list = np.frombuffer(base64.b64decode(b), dtype="<u4").astype(int).tolist()
    groups = near_duplicate_groups({"a": a, "b": as_list, "c": c}, Settings().dup_threshold)
    assert groups.get("a") == ["b"] and groups.get("b") == ["a"] and not groups.get("c")


def test_regrouping_the_changed_documents_gives_what_grouping_all_of_them_gives():
    """Near-duplicate groups updated for the documents added, edited or removed equal the groups made
    from scratch (same LSH candidates, same estimate), over random changes to a corpus of variants."""
    import random

    from conftest import SEEDS

    from rag.ingestion.documents import minhash_signature, near_duplicate_groups, regroup_near_duplicates

    sentences = [s for p in sorted(SEEDS.glob("*.txt")) for s in p.read_text().split(". ") if len(s) > 40]
    rng = random.Random(5)

    def variant() -> str:  # a few base "reports", each rewritten by dropping and reordering sentences
        base = rng.randrange(6)
        chosen = sentences[base * 12:(base + 1) * 12]
        kept = [s for s in chosen if rng.random() > 0.25]
        return ". ".join(kept if rng.random() > 0.5 else kept[::-1])

    signatures = {f"doc{i}": minhash_signature(variant()) for i in range(60)}
    groups = near_duplicate_groups(signatures, 0.2)
    assert sum(map(len, groups.values())) > 20  # the corpus does have near-duplicates to keep track of
    for _ in range(5):
        changed = set(rng.sample(sorted(signatures), 4))
        for key in changed:
            if rng.random() < 0.3:
                del signatures[key]  # removed
            else:
                signatures[key] = minhash_signature(variant())  # edited
        added = {f"new{rng.randrange(10**6)}" for _ in range(3)}
        signatures.update({key: minhash_signature(variant()) for key in added})
        groups = regroup_near_duplicates(signatures, 0.2, groups, changed | added)
        assert groups == near_duplicate_groups(signatures, 0.2)
