"""Messages shown to a planner: user text as plain Markdown, no server paths in errors."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from covplan.outputs.html_text import LABEL_MAX, markdown_text, plain_text

__all__ = ["markdown_label", "plain_label", "plain_markdown", "public_message"]


def plain_markdown(text: Any) -> str:
    """Return ``text`` with Markdown's special characters escaped, to show it as typed.

    Streamlit's ``st.error``, ``st.warning`` and ``st.write`` read Markdown; names from a
    user's file (``**x**``, ``[link](...)``, ``:red[...]``) must show as plain text.
    """
    return markdown_text(text)


def public_message(message: str, folder: str | Path, names: Mapping[str, str] | None = None
                   ) -> str:
    """Return an error message without the session's server folder in it.

    Parameters
    ----------
    message
        The message of an error raised while reading a session's files.
    folder
        The session's private folder.
    names
        Path of a file written there -> the uploaded file's own name, shown instead.
    """
    for path, name in sorted((names or {}).items(), key=lambda kv: -len(kv[0])):
        message = message.replace(path, name)
    root = str(folder).rstrip("/\\")
    message = re.sub(re.escape(root) + r"[/\\](?:[^\s'\"]*[/\\])?", "", message)
    return message.replace(root, "the upload folder")


def markdown_label(value: Any) -> str:
    """Return a name from the data as plain Markdown, cut to ``LABEL_MAX`` characters."""
    return markdown_text(value, LABEL_MAX)


def plain_label(value: Any) -> str:
    """Return a name from the data as plain text (for widget options), cut to ``LABEL_MAX``."""
    return plain_text(value, LABEL_MAX)
