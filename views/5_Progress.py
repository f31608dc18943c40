"""Progress: many dated photos or videos of one person, P(palsy) and measurements over time.

Session state: ``st.session_state["progress_records"]`` holds the latest series' records.
"""

import pandas as pd
import streamlit as st

from palsy_core.inference.progress import REGIONS, records_csv, trend
from palsy_core.io.media import PHOTO_EXTENSIONS, VIDEO_EXTENSIONS
from ui.common import disclaimer, get_model
from ui.progress import dates_from_upload, score_uploads, scores_figure, trend_figure

KEY = "progress_records"

st.set_page_config(page_title="Progress · palsy-fusion", layout="wide")
st.title("Recovery over time")
disclaimer()
st.markdown(
    "Upload dated photos or videos of **one person** (a selfie diary, clinic visits). Each is "
    "screened as on the Analyse page, and P(palsy), the affected side and per-side brow, eye and "
    "mouth measurements are followed over the dates. Dates come from a CSV you give, else the "
    "photo's EXIF date or the video's creation time, else the file name (`2022_01_16`, "
    "`2022-01-16`, `20220116`). Files are read in memory and never stored."
)
loaded = get_model()
if loaded is None:
    st.stop()

uploads = st.file_uploader(
    "Photos or videos of one person", accept_multiple_files=True, key="progress_files",
    type=sorted(ext.lstrip(".") for ext in PHOTO_EXTENSIONS | VIDEO_EXTENSIONS))
dates_file = st.file_uploader("Optional: a CSV of `name,date` (ISO dates) for the others",
                              type=["csv"], key="progress_dates")
if st.button("Score the series", type="primary", disabled=not uploads, key="progress_run"):
    try:
        dates = dates_from_upload(dates_file.getvalue()) if dates_file else {}
    except ValueError as exc:
        st.error(f"The dates CSV cannot be used: {exc}")
        st.stop()
    bar = st.progress(0.0, text="Scoring…")
    st.session_state[KEY] = score_uploads(
        loaded, uploads, dates,
        on_file=lambda done, total, name: bar.progress(done / total, f"{done}/{total}: {name}"))
    bar.empty()

records = st.session_state.get(KEY)
if not records:
    st.info("Upload the files and press **Score the series**.")
    st.stop()

summary = trend(records)
cols = st.columns(3)
rho = summary["spearman_rho"]
cols[0].metric("Dated files scored", summary["n"])
cols[1].metric("Spearman rho (date, P(palsy))", "–" if rho is None else f"{rho:.2f}",
               help="-1: P(palsy) falls steadily with the date; 0: no trend; +1: it rises.")
first = summary["first_day_under_threshold"]
cols[2].metric("Under the threshold from", first or "not yet",
               help="The first day from which the smoothed P(palsy) stays under the model's "
                    "threshold.")
st.plotly_chart(trend_figure(records, summary), key="progress_trend")
st.plotly_chart(scores_figure(records, summary), key="progress_scores")

table = pd.DataFrame([{
    "file": r["path"], "date": r["date"], "date from": r["date_source"],
    "P(palsy)": r.get("p_palsy"), "verdict": r.get("verdict") or "",
    "side": r.get("side") or "",
    **{f"{region} R-L (mm)": (r.get("regions") or {}).get(region, {}).get("difference")
       for region in REGIONS},
    "problem": r.get("error") or r.get("reason") or ""} for r in records])
st.dataframe(table, hide_index=True, key="progress_table")
st.caption("Measurements are per side, medians over the reliable face frames, in millimetres "
           "with the iris as the ruler: brow height (brow), palpebral fissure height (eye), "
           "commissure excursion (mouth); R-L is right minus left. They are measurements, not "
           "clinical grades.")
undated = [r["path"] for r in records if not r["date"] and not r.get("error")]
if undated:
    st.warning(f"No date found for {', '.join(undated)}: give them in a dates CSV.")
for r in records:
    if r.get("error"):
        st.error(r["error"] if r["error"].startswith(r["path"]) else f"{r['path']}: {r['error']}")
st.download_button("Download CSV", records_csv(records), file_name="progress.csv",
                   mime="text/csv", key="progress_csv")
