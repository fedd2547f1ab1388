"""JSON has no NaN or infinity: Cairn writes them as the strings "NaN", "Infinity", "-Infinity" (in answers and in
stored JSON such as a version's lineage)."""

from __future__ import annotations

import math


def num(value: float | None) -> float | str | None:
    if value is None or -math.inf < value < math.inf:
        return value
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def nums(values: list[float | None]) -> list[float | str | None]:
    """``num`` over a list, with a fast path for the usual all-finite case. None means NaN."""
    if values and None not in values:
        finite: list[float] = values  # type: ignore[assignment]
        if -math.inf < min(finite) and max(finite) < math.inf:
            return finite  # type: ignore[return-value]
    return [("NaN" if v is None else num(v)) for v in values]
