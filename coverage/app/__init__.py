"""The planner's Streamlit app (``streamlit run app.py``).

``page`` draws the page and holds no logic of its own; ``state`` keeps one session's plan
edits and named scenarios (and saves them to a file); ``cache`` holds the heavy shared work
(road networks, baselines, siting matrices) built once per region; ``i18n`` the Chinese and
English interface strings.
"""
