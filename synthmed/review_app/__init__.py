"""The review app (``streamlit run app.py`` / ``synthmed app``): privacy officers compare releases and review them.

Layout: ``data`` turns the catalog and release files into frames (no Streamlit, unit-testable);
``charts`` draws them with Altair; ``ui`` holds the shared Streamlit pieces (store, plain messages for
empty and broken states); ``pages`` has one module per page, each with a ``render()`` that runs on its
own under ``streamlit.testing.v1.AppTest``; ``navigation`` registers the pages for ``app.py``.

The app reads the catalog (aggregates only) and release folders (manifest, file hashes); it never
opens the real data.
"""
