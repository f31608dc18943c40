"""palsy-fusion dashboard: ``streamlit run app.py`` (``make run``).

The router: Streamlit's navigation API lists the pages (``ui.common.PAGES``) with their titles
and icons, Home first. Each page is a thin script in ``views/``.
"""

import streamlit as st

from palsy_core.native_logs import filter_native_logs
from ui.common import HOME, PAGES

filter_native_logs()  # MediaPipe/TFLite's repeated harmless start-up lines stay out of the log

st.set_page_config(page_title="palsy-fusion", page_icon="🩺", layout="wide")
navigation = st.navigation([
    st.Page(page.path, title=page.title, icon=page.icon, url_path=page.url_path,
            default=page is HOME)
    for page in (HOME, *PAGES)])
navigation.run()
