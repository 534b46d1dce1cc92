"""`rag eval`: score the pipeline on a gold Q&A set with deterministic metrics and gate CI on them."""

from rag.evaluation.gate import Thresholds
from rag.evaluation.gold import GoldFileError, GoldItem, load_gold
from rag.evaluation.report import compare, format_text, load_baseline, write_markdown
from rag.evaluation.runner import METRIC_NAMES, EvalResult, aggregate, run_eval

__all__ = ["METRIC_NAMES", "EvalResult", "GoldFileError", "GoldItem", "Thresholds", "aggregate", "compare",
           "format_text", "load_baseline", "load_gold", "run_eval", "write_markdown"]
