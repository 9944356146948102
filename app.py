"""Streamlit app for planners, a thin page over the package: ``streamlit run app.py``."""

from __future__ import annotations

from covplan.app.page import render

render()
