"""Small statistics shared by the experiments' rules and the report's plots."""
from __future__ import annotations

import math
from typing import Optional


def pearson(xs: list, ys: list) -> Optional[float]:
    """Pearson's r of two equally long lists; None with fewer than 3 points or a constant list."""
    n = len(xs)
    if n < 3:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    if sxx == 0 or syy == 0:
        return None
    return sxy / math.sqrt(sxx * syy)
