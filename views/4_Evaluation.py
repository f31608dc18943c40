"""Evaluation: the shipped model's cross-validation, and scoring the user's own labelled data.

Session state: ``st.session_state["evaluation_own"]`` holds the latest own-data
``ui.evaluation.EvaluationResult`` (one per session, replaced by the next run).
"""

import tempfile
from pathlib import Path

import streamlit as st

from palsy_core.extraction.pipeline import Settings
from palsy_core.io.bundle import BundleError, unpacked_bundle
from palsy_core.io.manifest import ManifestError
from palsy_core.settings import artifacts_dir
from ui.common import disclaimer, get_model, model_path
from ui.evaluation import (
    evaluate_manifest,
    load_cv,
    show_evaluation,
    show_problem,
    show_transfer,
)

OWN_KEY = "evaluation_own"
FROM_PATH, FROM_ZIP = "A manifest on this computer", "A zip with a manifest and its media"

st.set_page_config(page_title="Evaluation · palsy-fusion", layout="wide")
st.title("Evaluation")
disclaimer()

cv_tab, own_tab = st.tabs(["Shipped model: unseen sources and cross-validation",
                            "Your own labelled data"])

with cv_tab:
    cv_dir = artifacts_dir(model_path())
    cv = load_cv(cv_dir)
    if cv is None:
        st.info(f"No cross-validation results at `{cv_dir}` (`metrics.json` and "
                "`predictions.csv`); `make train` writes them next to the model.")
    else:
        # The check we choose models on comes first, as in the model card.
        st.subheader("Transfer to an unseen source")
        show_transfer(cv_dir)
        st.subheader("Inside the collection: subject-grouped cross-validation")
        st.caption("Out-of-fold predictions: every file was scored by a model trained without "
                   "its subject. Sources are shared between training and test, so this flatters "
                   "style-bound cues; the transfer check above is the one to expect on new "
                   "photos.")
        show_evaluation(cv, key="cv")

with own_tab:
    st.markdown("A manifest is a CSV with the columns `path,label,subject` and optionally "
                "`side,source`; `path` is relative to the manifest, `label` is `healthy` or "
                "`palsy`. Files are scored with the loaded model and its own thresholds.")
    loaded = get_model()
    mode = st.radio("Labelled data", [FROM_PATH, FROM_ZIP], horizontal=True, key="own_mode")
    if mode == FROM_PATH:
        typed = st.text_input("Manifest CSV path", key="own_manifest",
                              placeholder="/data/my_study/manifest.csv")
        source = Path(typed.strip().strip("'\"")).expanduser() if typed.strip() else None
        st.caption("Extracted modalities are cached as `python -m palsy_core evaluate` caches "
                   "them, so evaluating the same files again is quick.")
    else:
        source = st.file_uploader("Zip holding manifest.csv and the files it lists",
                                  type=["zip"], key="own_zip")
        st.caption("Unpacked into a private temporary folder that is deleted after scoring; "
                   "paths leading outside the zip are refused.")
    if st.button("Evaluate", type="primary", key="own_run",
                 disabled=loaded is None or source is None):
        bar = st.progress(0.0, text="Reading the manifest…")

        def progress(done: int, total: int, name: str) -> None:
            bar.progress(done / max(total, 1), text=f"Analysed {done}/{total}: {name}")

        try:
            if mode == FROM_PATH:
                result = evaluate_manifest(source, loaded, Settings(), on_progress=progress)
            else:
                with (unpacked_bundle(source) as bundle,
                      tempfile.TemporaryDirectory(prefix="palsy-cache-") as cache):
                    result = evaluate_manifest(bundle.manifest, loaded, Settings(), Path(cache),
                                               confine_to=bundle.root, on_progress=progress,
                                               title=f"`{source.name}`")
            st.session_state[OWN_KEY] = result
        except (ManifestError, BundleError) as exc:
            st.session_state.pop(OWN_KEY, None)
            show_problem(exc)
        bar.empty()
    if OWN_KEY in st.session_state:
        show_evaluation(st.session_state[OWN_KEY], key="own")
