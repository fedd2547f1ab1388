"""JSON has no NaN or infinity: Cairn writes them as the strings "NaN", "Infinity", "-Infinity"."""

from __future__ import annotations

import math


def num(value: float | None) -> float | str | None:
    if value is None or -math.inf < value < math.inf:
        return value
    if value != value:
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"
