"""The CI gate: thresholds from a TOML file, checked against an eval's metrics.

    [min]                      # fail when a metric falls below
    fact_recall = 0.85
    [max]                      # fail when a metric rises above
    false_abstention_rate = 0.05
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from rag.errors import InputRejected
from rag.evaluation.gold import read_input
from rag.evaluation.runner import METRIC_NAMES


@dataclass(frozen=True)
class Thresholds:
    minimum: dict[str, float] = field(default_factory=dict)
    maximum: dict[str, float] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> "Thresholds":
        text = read_input(path, "thresholds file", str)
        data = read_input(path, "thresholds file", tomllib.loads)  # TOML syntax errors name line and column
        problems = [(_line_of(text, name), f"unknown table [{name}] (expected [min] and [max])")
                    for name in data if name not in ("min", "max")]
        for table in ("min", "max"):
            section = data.get(table, {})
            if not isinstance(section, dict):
                problems.append((_line_of(text, table), f"[{table}] must be a table of metric = number"))
                continue
            for name, value in section.items():
                where = _line_of(text, name, table)
                if name not in METRIC_NAMES:
                    problems.append((where, f"[{table}] {name}: not a gateable metric (one of {', '.join(METRIC_NAMES)})"))
                elif isinstance(value, bool) or not isinstance(value, (int, float)):
                    problems.append((where, f"[{table}] {name}: must be a number, got {value!r}"))
        if problems:
            raise InputRejected("\n".join(f"thresholds file {path}:{line}: {problem}" for line, problem in problems))
        return cls(minimum={k: float(v) for k, v in data.get("min", {}).items()},
                   maximum={k: float(v) for k, v in data.get("max", {}).items()})

    def check(self, metrics: dict[str, float | None]) -> list[str]:
        """One message per gated metric that fails, naming it; empty when the gate passes."""
        failures = []
        for name, bound, is_minimum in [(n, b, True) for n, b in self.minimum.items()] + \
                [(n, b, False) for n, b in self.maximum.items()]:
            value = metrics.get(name)
            if value is None:
                failures.append(f"{name} was not measured (nothing in the gold set applies to it); "
                                f"the gate needs {self.bound(name)}")
            elif value < bound if is_minimum else value > bound:
                side = "below" if is_minimum else "above"
                failures.append(f"{name} = {value:.4g} is {side} the threshold {bound:g}")
        return failures

    def bound(self, name: str) -> str:
        if name in self.minimum:
            return f">= {self.minimum[name]:g}"
        if name in self.maximum:
            return f"<= {self.maximum[name]:g}"
        return ""


def _line_of(text: str, key: str, table: str | None = None) -> int:
    """The line defining `key` (in `[table]` when given), for error messages; 1 if not found."""
    current = None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        header = re.fullmatch(r"\[\s*([^\]]+?)\s*\]", stripped)
        if header:
            current = header.group(1)
            if table is None and current == key:
                return number
        elif current == table and re.match(rf"[\"']?{re.escape(key)}[\"']?\s*=", stripped):
            return number
    return 1
