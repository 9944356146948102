"""One browser session's state: its language, private folder, plans and widget values.

Everything lives in ``st.session_state`` (one per browser session, so one user's edits never
reach another's); the plans themselves are :class:`covplan.planning.Plan` data.
"""

from __future__ import annotations

from typing import Any

import streamlit as st
from covplan.app.i18n import detect_language
from covplan.planning import Plan, SessionPlans, UploadStore, public_message

__all__ = ["folder", "language", "plans", "public", "reset_widgets", "session"]


def session() -> Any:
    """Return this browser session's ``st.session_state``."""
    return st.session_state


def language() -> str:
    """Return the interface language (the browser's preferred one until the user picks)."""
    if "lang" not in session():
        session()["lang"] = detect_language(dict(st.context.headers or {}))
    return str(session()["lang"])


def folder() -> UploadStore:
    """Return the session's private folder (made again if it was removed)."""
    if "folder" not in session() or not session()["folder"].alive:
        session()["folder"] = UploadStore(prefix="covplan-session-")
    return session()["folder"]


def plans(region: str) -> SessionPlans:
    """Return the session's plans; a fresh current plan when the region changed."""
    kept: SessionPlans | None = session().get("plans")
    if kept is None:
        kept = SessionPlans(current=Plan(region=region))
        session()["plans"] = kept
    elif kept.current.region != region:
        kept.current = Plan(region=region)
        reset_widgets(kept.current)
    return kept


def reset_widgets(plan: Plan) -> None:
    """Make the standards and siting widgets show ``plan`` (called before they are drawn)."""
    ss = session()
    for key in [k for k in ss if str(k).startswith("thr|")]:
        del ss[key]
    ss["w_preset"] = plan.preset or ""
    for key, value in (("w_siting", plan.siting_rule), ("w_type", plan.station_type)):
        if value is None:
            ss.pop(key, None)
        else:
            ss[key] = value
    ss["w_closed"] = list(plan.closed)
    for rid, values in plan.thresholds.items():
        for attr, value in values.items():
            if isinstance(value, dict):
                for sub, number in value.items():
                    ss[f"thr|{rid}|{attr}|{sub}"] = float(number)
            else:
                ss[f"thr|{rid}|{attr}|"] = float(value)
    ss.pop("proposal", None)
    ss.pop("exports", None)


def public(message: str) -> str:
    """Return ``message`` with the session folder's paths replaced by the uploaded names."""
    kept = session().get("folder")
    if kept is None:
        return message
    return public_message(message, kept.path, session().get("upload_names"))
