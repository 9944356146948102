"""Text for HTML exports: every value escaped, numbers formatted the same way everywhere."""

from __future__ import annotations

import html
import math
from typing import Any

__all__ = ["escape", "number"]


def escape(value: Any) -> str:
    """HTML-escape any value as text (None and NaN become an empty string)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return html.escape(str(value), quote=True)


def number(value: Any, digits: int = 0, *, whole_as_integer: bool = False) -> str:
    """Format a number with thousands separators; escaped text for anything else.

    Parameters
    ----------
    value
        The value.
    digits
        Decimals shown.
    whole_as_integer
        Show whole numbers without decimals (when ``digits <= 1``).
    """
    try:
        num = float(value)
    except (TypeError, ValueError):
        return escape(value)
    if math.isnan(num):
        return ""
    if math.isinf(num):
        return "∞"
    if whole_as_integer and num.is_integer() and digits <= 1:
        return f"{int(num):,}"
    return f"{num:,.{digits}f}"
