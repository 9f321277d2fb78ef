"""Figures, targets and the table: pure functions over numbers (no processes, no I/O).

A figure is measured several times for authq ("ours") and for its reference, interleaved in
one run; the table quotes the median of each and the ratio of the medians.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile (``pct`` in 0..100) of ``values``; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return float(ordered[min(rank, len(ordered)) - 1])


def median(values: Iterable[float | None]) -> float | None:
    real = [v for v in values if v is not None]
    return float(statistics.median(real)) if real else None


@dataclass
class Target:
    """``kind`` is ``ratio_min`` (ours/reference ≥ value), ``max`` (ours ≤ value, absolute)."""

    kind: str
    value: float
    unit: str = ""

    def describe(self) -> str:
        if self.kind == "ratio_min":
            return f">= {self.value:.0%} of ref"
        return f"<= {self.value:g} {self.unit}".rstrip()

    def met(self, ours: float | None, ratio: float | None) -> bool | None:
        if self.kind == "ratio_min":
            return None if ratio is None else ratio >= self.value
        return None if ours is None else ours <= self.value


@dataclass
class Figure:
    """One row of the table: every run of ours and of the reference, in the order they ran."""

    key: str
    label: str
    unit: str
    ours: list[float | None] = field(default_factory=list)
    reference: list[float | None] = field(default_factory=list)
    target: Target | None = None
    note: str = ""

    @property
    def ours_median(self) -> float | None:
        return median(self.ours)

    @property
    def reference_median(self) -> float | None:
        return median(self.reference)

    @property
    def ratio(self) -> float | None:
        ours, ref = self.ours_median, self.reference_median
        if ours is None or not ref:
            return None
        return ours / ref

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.target.met(self.ours_median, self.ratio)

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label, "unit": self.unit,
            "ours_runs": self.ours, "reference_runs": self.reference,
            "ours_median": self.ours_median, "reference_median": self.reference_median,
            "ratio": self.ratio,
            "target": None if self.target is None else self.target.describe(),
            "met": self.met, "note": self.note,
        }


def _num(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit in ("ms",):
        return f"{value:.1f}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}"


def _spread(values: list[float | None], unit: str) -> str:
    real = [v for v in values if v is not None]
    if len(real) < 2:
        return ""
    return f" ({_num(min(real), unit)}-{_num(max(real), unit)})"


def table(figures: Sequence[Figure]) -> str:
    """A plain-text table: medians (min-max over runs), the ratio, the target and whether it is met."""
    head = ("figure", "ours (median, range)", "reference (median, range)", "ours/ref", "target", "met")
    rows = [head]
    for f in figures:
        met = {True: "MET", False: "MISSED", None: "-"}[f.met]
        rows.append((
            f"{f.label} [{f.unit}]",
            _num(f.ours_median, f.unit) + _spread(f.ours, f.unit),
            _num(f.reference_median, f.unit) + _spread(f.reference, f.unit),
            "-" if f.ratio is None else f"{f.ratio:.2f}",
            "-" if f.target is None else f.target.describe(),
            met,
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = []
    for n, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def summary(figures: Sequence[Figure]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {"met": [], "missed": [], "unknown": []}
    for f in figures:
        if f.target is None:
            continue
        out[{True: "met", False: "missed", None: "unknown"}[f.met]].append(f.key)
    return out
