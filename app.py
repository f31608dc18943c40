"""palsy-fusion dashboard home page."""

import streamlit as st

st.set_page_config(page_title="palsy-fusion", page_icon=":material/face:", layout="wide")

st.title("palsy-fusion")
st.warning(
    "Research tool, not a diagnostic device. It must not be used to diagnose, grade or treat "
    "facial palsy.",
    icon=":material/warning:",
)
st.markdown(
    "Screens faces for one-sided facial palsy by fusing four views of the same face: the RGB "
    "face, an image of facial line segments, landmark coordinates and expression features. "
    "The analysis pages arrive with the dashboard issue; the core pipeline is available from the "
    "command line: `python -m palsy_core --help`."
)
