r"""The one place where text from the data is made safe to show in an export or the app.

Names, ids and the scenario name come from the user's files and may hold anything:
template syntax (``{{ ... }}``, ``{% ... %}``, ``{# ... #}``), HTML, Markdown images that
would make a browser fetch a URL, bidirectional control characters that reorder what a
reader sees, or tens of thousands of characters. The helpers here turn such a value into
text that shows as typed and can do nothing else:

- :func:`plain_text`: drops bidi controls (U+202A-202E, U+2066-2069, U+200E/F, U+061C) and
  other C0/C1 control characters, optionally truncates with an ellipsis. For CSV/XLSX cells
  and PNG labels.
- :func:`escape`: :func:`plain_text`, then HTML-escaped, and every ``{`` / ``}`` written as
  ``&#123;`` / ``&#125;``: folium and branca compile parts of their own rendered output as
  Jinja2 templates again (``MacroElement.render`` wraps each macro's output in a new
  ``Element``), so a brace that reached the page could be evaluated. The entities show as
  the braces in the browser.
- :func:`markdown_text`: :func:`plain_text` with Markdown's special characters escaped,
  for Streamlit calls that read Markdown (``st.write``, ``st.markdown``, widget labels).
- :func:`safe_json_text`: JSON text (a manifest in ``<script type="application/json">``
  or a PNG text chunk) with every ``{`` that would open a template tag and every bidi
  control written as a ``\uXXXX`` escape: the same JSON value, nothing to evaluate or
  reorder.
"""

from __future__ import annotations

import html
import math
import re
from typing import Any

__all__ = [
    "BIDI_CONTROLS",
    "LABEL_MAX",
    "escape",
    "markdown_text",
    "number",
    "plain_text",
    "safe_json_text",
]

#: Unicode bidirectional formatting characters: embeddings/overrides, isolates, marks.
BIDI_CONTROLS = frozenset(
    [chr(c) for c in range(0x202A, 0x202F)]
    + [chr(c) for c in range(0x2066, 0x206A)]
    + ["\u200e", "\u200f", "\u061c"]
)
#: Longest name shown in a tooltip, popup or PNG label (longer ones end in an ellipsis).
LABEL_MAX = 80
ELLIPSIS = "…"

# Bidi controls, and C0/C1 controls except tab, newline and carriage return.
_UNSAFE = re.compile(
    "[" + "".join(sorted(BIDI_CONTROLS)) + "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"
)
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+\-.!|~:$=&])")
_TEMPLATE_OPEN = re.compile(r"\{(?=[{%#])")
_BIDI = re.compile("[" + "".join(sorted(BIDI_CONTROLS)) + "]")


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def plain_text(value: Any, max_len: int | None = None) -> str:
    """Return ``value`` as text without bidi or other control characters.

    Parameters
    ----------
    value
        Any value (None and NaN become an empty string).
    max_len
        When given, a longer text is cut to ``max_len`` characters, the last being ``…``.

    Returns
    -------
    str
        The cleaned text.
    """
    if _is_missing(value):
        return ""
    out = _UNSAFE.sub("", str(value))
    if max_len is not None and len(out) > max_len:
        out = out[: max(max_len - 1, 0)].rstrip() + ELLIPSIS
    return out


def escape(value: Any, max_len: int | None = None) -> str:
    """Return ``value`` as HTML text that no template engine or browser interprets.

    Parameters
    ----------
    value
        Any value (None and NaN become an empty string).
    max_len
        Truncate the shown text to this many characters (see :func:`plain_text`).

    Returns
    -------
    str
        :func:`plain_text` of the value, HTML-escaped (quotes too), with ``{`` and ``}``
        as the character references ``&#123;`` and ``&#125;``.
    """
    text = html.escape(plain_text(value, max_len), quote=True)
    return text.replace("{", "&#123;").replace("}", "&#125;")


def markdown_text(value: Any, max_len: int | None = None) -> str:
    """Return ``value`` as Markdown that shows the text as typed (no link, image or markup).

    Parameters
    ----------
    value
        Any value (None and NaN become an empty string).
    max_len
        Truncate the shown text to this many characters (see :func:`plain_text`).
    """
    return _MARKDOWN_SPECIAL.sub(r"\\\1", plain_text(value, max_len))


def safe_json_text(text: str) -> str:
    r"""Return JSON text without ``{{``, ``{%``, ``{#`` or a bidi control, as the same JSON value.

    A JSON object's own ``{`` is always followed by ``"``, ``}`` or white space, and bidi
    controls can only occur inside strings; there ``\u007b`` (or ``\u202e``...) means the
    same character, so ``json.loads`` of the result equals ``json.loads(text)``.
    """
    text = _TEMPLATE_OPEN.sub(r"\\u007b", text)
    return _BIDI.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)


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
