"""The planner's Streamlit app (``streamlit run app.py``): widgets over :mod:`covplan.planning`.

``page`` draws the page (widgets, options, messages; no computation); ``state`` keeps one
browser session's language, folder, plans and widget values in ``st.session_state``;
``cache`` wraps the package's heavy shared work (regions, baselines, siting matrices, maps)
in Streamlit caches keyed by content; ``i18n`` holds the Chinese and English strings.
"""
