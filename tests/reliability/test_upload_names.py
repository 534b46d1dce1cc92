"""13. Uploaded articles (the chat's upload, the API's /ingest): checked like corpus files, saved in the
data dir's uploads folder under their own name made safe (never a path of theirs); odd types refused."""

import pytest

from rag.errors import InputRejected
from rag.ingestion.uploads import save_upload

ARTICLE = b"Officials inspected the summit venue on Monday and said it was ready.\n"


@pytest.mark.parametrize("name, saved", [
    ("../../etc/passwd.txt", "passwd.txt"), ("/abs/path.md", "path.md"), ("CON.txt", "CON.txt"),
    ("a\x00b.txt", "ab.txt"), ("..\\win.html", "win.html"), (".hidden.txt", "hidden.txt"),
    ("Über <Sanktionen>: “Öl”.txt", "Über -Sanktionen- -Öl.txt"), ("....txt", "upload.txt"),
])
def test_the_uploaded_name_is_kept_safe_and_never_becomes_a_path(settings, name, saved):
    path, new = save_upload(name, ARTICLE, settings)
    assert new and path.parent == settings.uploads_dir and path.name == saved
    assert path.read_bytes() == ARTICLE and not settings.corpus_dir.exists()


def test_the_same_article_twice_is_one_file_and_a_taken_name_gets_a_number(settings):
    first, new = save_upload("a.txt", ARTICLE, settings)
    second, again = save_upload("b.txt", ARTICLE, settings)
    assert first == second and new and not again
    other, _ = save_upload("a.txt", ARTICLE + b"More.\n", settings)
    assert [p.name for p in sorted(settings.uploads_dir.iterdir())] == ["a-2.txt", "a.txt"] and other.name == "a-2.txt"


@pytest.mark.parametrize("name, data, reason", [
    ("notes.pdf", b"%PDF-1.4", "unsupported file type '.pdf'"),
    ("noext", ARTICLE, r"unsupported file type '\(none\)'"),
    ("empty.txt", b"  \n", "file is empty"),
    ("blob.txt", b"\x00\x01\x02", "file looks binary"),
    ("page.html", b"<html><script>x()</script></html>", "file has no readable text"),
])
def test_bad_uploads_are_refused_and_nothing_is_written(settings, name, data, reason):
    with pytest.raises(InputRejected, match=reason):
        save_upload(name, data, settings)
    assert not settings.uploads_dir.exists() or not list(settings.uploads_dir.iterdir())


def test_size_limit(settings):
    small = settings.replace(max_file_bytes=10)
    with pytest.raises(InputRejected, match="over the 10-byte limit"):
        save_upload("a.txt", ARTICLE, small)


def test_api_ingest_names_never_become_paths(tmp_path, corpus, rag_server):
    import httpx

    server = rag_server(tmp_path / "data", RAG_API_TOKEN="t0ken", RAG_CORPUS_DIR=str(corpus))
    auth = {"Authorization": "Bearer t0ken"}
    names = ["../../etc/passwd.txt", "/tmp/absolute.md", "..\\..\\win.html", "sub/dir/x.txt"]
    for n, name in enumerate(names):
        body = {"documents": [{"filename": name, "text": f"Officials said on Monday that plan {n} was approved."}]}
        assert httpx.post(f"{server.url}/ingest", json=body, headers=auth, timeout=120).status_code == 200
    refused = httpx.post(f"{server.url}/ingest", headers=auth, timeout=60,
                         json={"documents": [{"filename": "run.exe", "text": "MZ"}]})
    assert refused.status_code == 422 and "unsupported file type '.exe'" in refused.json()["error"]
    uploads = tmp_path / "data" / "uploads"
    assert sorted(p.name for p in uploads.iterdir()) == ["absolute.md", "passwd.txt", "win.html", "x.txt"]
    assert all(p.parent == uploads for p in uploads.rglob("*")) and not (tmp_path / "absolute.md").exists()
    assert sorted(p.name for p in corpus.iterdir()) == sorted(["002_f2e8e39dc4325990.txt", "004_936fb12f57722203.txt"])
