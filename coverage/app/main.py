"""The app's page as a script Streamlit can run from an installed package (``covplan app``).

``covplan app`` runs ``python -m streamlit run <this file>``; ``app.py`` at the repository
root does the same for ``streamlit run app.py``.
"""

from __future__ import annotations

from covplan.app.page import render

render()
