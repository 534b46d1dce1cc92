"""What an eval run shows: the terminal table, the comparison with a baseline, and the Markdown report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rag.errors import InputRejected
from rag.evaluation.gate import Thresholds
from rag.evaluation.gold import read_input
from rag.evaluation.runner import METRIC_NAMES

# Metrics that are shares in [0, 1] and so fit one bar chart; the rest are words and milliseconds.
RATIO_METRICS = tuple(n for n in METRIC_NAMES if n not in ("answer_words_mean", "latency_ms_p50", "latency_ms_p95"))


def load_baseline(path: Path) -> dict[str, Any]:
    data = read_input(path, "baseline file", json.loads)
    if not isinstance(data, dict) or not isinstance(data.get("metrics"), dict) or \
            not isinstance(data.get("questions"), list):
        raise InputRejected(f"baseline file {path} is not a `rag eval --json` report (no metrics and questions)")
    return data


def compare(current: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """Per-question regressions (passed before, fail now) and improvements, and metric deltas."""
    before = {q["id"]: q for q in baseline["questions"] if isinstance(q, dict) and "id" in q}
    regressions, improvements = [], []
    for q in current["questions"]:
        old = before.get(q["id"])
        if old is None or old.get("passed") == q["passed"]:
            continue
        entry = {"id": q["id"], "question": q["question"], "reasons": q.get("reasons", []),
                 "answer": q.get("answer", ""), "baseline_answer": old.get("answer", "")}
        (improvements if q["passed"] else regressions).append(entry)
    deltas = {name: round(current["metrics"][name] - baseline["metrics"][name], 4)
              for name in METRIC_NAMES
              if isinstance(current["metrics"].get(name), (int, float))
              and isinstance(baseline["metrics"].get(name), (int, float))}
    return {"regressions": regressions, "improvements": improvements, "metric_deltas": deltas,
            "new_questions": sorted(set(q["id"] for q in current["questions"]) - set(before)),
            "dropped_questions": sorted(set(before) - set(q["id"] for q in current["questions"]))}


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def metric_rows(result: dict[str, Any], thresholds: Thresholds | None,
                baseline: dict[str, Any] | None) -> tuple[list[str], list[list[str]]]:
    """The metrics table: one row a metric; columns all, each split, the baseline, the gate."""
    splits = list(result.get("splits") or {})
    header = ["metric", f"all ({len(result['questions'])})"]
    header += [f"{s} ({sum(1 for q in result['questions'] if q['split'] == s)})" for s in splits]
    if baseline:
        header.append("baseline")
    if thresholds:
        header.append("gate")
    rows = []
    for name in METRIC_NAMES:
        row = [name.replace("_k", f"_{result['k']}") if name.endswith("_at_k") else name, _fmt(result["metrics"][name])]
        row += [_fmt(result["splits"][s][name]) for s in splits]
        if baseline:
            row.append(_fmt(baseline["metrics"].get(name)))
        if thresholds:
            row.append(thresholds.bound(name))
        rows.append(row)
    return header, rows


def format_text(result: dict[str, Any], thresholds: Thresholds | None = None, baseline: dict[str, Any] | None = None,
                comparison: dict[str, Any] | None = None) -> str:
    header, rows = metric_rows(result, thresholds, baseline)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    out = [f"{len(result['questions'])} questions, k={result['k']}, mode={result['mode']}, "
           f"{result['seconds']:.1f} s", "", line(header), line(["-" * w for w in widths]), *map(line, rows)]
    failures = [q for q in result["questions"] if not q["passed"]]
    out += ["", f"{len(failures)} failing question(s)" + (":" if failures else "")]
    for q in failures:
        out.append(f"  {q['id']} [{q['split']}] {q['question']}")
        out += [f"      {reason}" for reason in q["reasons"]]
    if comparison:
        out += ["", f"against the baseline: {len(comparison['regressions'])} regression(s), "
                    f"{len(comparison['improvements'])} improvement(s)"]
        out += [f"  regressed: {q['id']} {q['question']}" for q in comparison["regressions"]]
        out += [f"  improved:  {q['id']} {q['question']}" for q in comparison["improvements"]]
    if result.get("judge"):
        out += ["", "LLM judge (reported only, never gated): " +
                ", ".join(f"{k} {_fmt(v)}" for k, v in result["judge"]["metrics"].items())]
    out += [f"warning: {w}" for w in result.get("warnings", [])]
    return "\n".join(out)


def write_markdown(result: dict[str, Any], path: Path, thresholds: Thresholds | None = None,
                   baseline: dict[str, Any] | None = None, comparison: dict[str, Any] | None = None,
                   gate_failures: list[str] | None = None) -> Path:
    """The Markdown report and, beside it, `<name>.png`: a bar chart of the metrics (with the baseline)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    chart = path.with_suffix(".png")
    write_chart(result, chart, baseline)
    header, rows = metric_rows(result, thresholds, baseline)
    lines = [f"# Eval report: {Path(result['gold']).name} over {result['corpus']}", "",
             f"{len(result['questions'])} questions, k = {result['k']}, mode = {result['mode']}, "
             f"embeddings {result['settings'].get('embed_model')}, chunker {result['settings'].get('chunker')}.", ""]
    if gate_failures is not None:
        lines += ["**Gate: passed.**" if not gate_failures else "**Gate: FAILED** — " + "; ".join(gate_failures), ""]
    lines += [f"![metrics]({chart.name})", "", _md_table(header, rows), ""]
    if comparison:
        lines += _md_comparison(comparison)
    failures = [q for q in result["questions"] if not q["passed"]]
    lines += [f"## Failing questions ({len(failures)})", ""]
    lines += [f"- **{q['id']}** ({q['split']}) {q['question']}  \n  " + "; ".join(q["reasons"]) +
              (f"  \n  answer: {_one_line(q['answer'])}" if q.get("answer") else "") for q in failures] or ["None."]
    if result.get("judge"):
        lines += ["", "## LLM judge (reported only, never gated)", "",
                  _md_table(["metric", "value"], [[k, _fmt(v)] for k, v in result["judge"]["metrics"].items()])]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _md_comparison(comparison: dict[str, Any]) -> list[str]:
    lines = ["## Against the baseline", "",
             f"{len(comparison['regressions'])} regression(s), {len(comparison['improvements'])} improvement(s).", ""]
    for title, key in (("Regressions", "regressions"), ("Improvements", "improvements")):
        if comparison[key]:
            lines += [f"### {title}", ""]
            lines += [f"- **{q['id']}** {q['question']}  \n  now: {_one_line(q['answer'])}  \n"
                      f"  before: {_one_line(q['baseline_answer'])}" for q in comparison[key]]
            lines.append("")
    return lines


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] +
                     ["| " + " | ".join(r) + " |" for r in rows])


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= limit else text[:limit] + "…"


def write_chart(result: dict[str, Any], path: Path, baseline: dict[str, Any] | None = None) -> Path:
    """A horizontal bar chart of the share-valued metrics, the baseline's beside each bar."""
    import matplotlib

    matplotlib.use("Agg")  # no display: CI and servers
    import matplotlib.pyplot as plt

    names = [n for n in RATIO_METRICS if result["metrics"].get(n) is not None]
    current = [result["metrics"][n] for n in names]
    figure, axes = plt.subplots(figsize=(7, 0.45 * len(names) + 1.2))
    positions = range(len(names))
    height = 0.38 if baseline else 0.6
    bars = axes.barh([p + (height / 2 if baseline else 0) for p in positions], current, height=height,
                     label="this run", color="#2f6db5")
    axes.bar_label(bars, fmt="%.3f", fontsize=7, padding=2)
    if baseline:
        before = [baseline["metrics"].get(n) or 0.0 for n in names]
        axes.barh([p - height / 2 for p in positions], before, height=height, label="baseline", color="#b0b7c3")
        axes.legend(loc="lower right", fontsize=8)
    axes.set_yticks(list(positions), [n.replace("_at_k", f"@{result['k']}") for n in names], fontsize=8)
    axes.invert_yaxis()
    axes.set_xlim(0, 1.12)  # room for the value labels
    axes.set_title(f"rag eval: {len(result['questions'])} questions, k={result['k']}, {result['mode']}", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
