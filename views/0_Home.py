"""Home: what the tool does, the model card in brief, and links to the other pages."""

import streamlit as st

from palsy_core.registry import MODALITIES
from palsy_core.settings import artifacts_dir
from ui.common import PAGES, disclaimer, get_model, model_path, verdict_note
from ui.evaluation import (
    load_cv,
    load_transfer,
    metrics_table,
    pooled_transfer,
    verdict_first,
    weights_figure,
)

st.title("palsy-fusion")
disclaimer()
st.markdown(
    "Screens a face for **one-sided facial palsy** in a photo, a video or the live camera. Each "
    "frame is seen six ways: the aligned RGB face, an image of facial line segments, the 478 "
    "landmark coordinates, expression features (left-right asymmetry measured in millimetres), "
    "the face-network asymmetry and the blendshape asymmetry (MediaPipe's face-trained networks "
    "run on the face and on its mirror image). Every view is compared with its own mirror image, "
    "so identity, lighting and photo style cancel and asymmetry remains. A network per view "
    "feeds a learned weighted fusion, which gives P(palsy) and the likely affected side; each "
    "frame is scored as seen and mirrored. Which views the verdict fuses is chosen on how well "
    "they carry over to photo sources the model never saw (below). Everything runs offline on "
    "this computer."
)

st.markdown(
    "Beyond yes or no: the **guided exam** (Live camera page, *Guided exam* mode, or a recorded "
    "exam on the Exam video page) prompts seven standard movements and grades the brow, eye, "
    "mid-face and mouth of each side at rest, in movement and for synkinesis on an eFACE-style "
    "0-100 scale, with an HTML and PDF report; **Progress** follows one person's dated photos "
    "or videos over weeks. The grades are computed from landmarks, not clinically validated."
)

for page in PAGES:
    st.page_link(page.path, label=page.label, icon=page.icon, help=page.help)

st.header("The loaded model")
loaded = get_model()
if loaded is not None:
    st.caption(f"`{model_path()}`")
    names = {m.key: m for m in MODALITIES}
    left, right = st.columns([3, 2])
    with left:
        st.subheader("Modalities")
        for key in loaded.modalities:
            m = names[key]
            off = "" if key in loaded.verdict_modalities else " *(not in the verdict)*"
            st.markdown(f"- **{m.name}**{off}: {m.description}")
        if loaded.verdict_modalities != loaded.modalities:
            st.caption(f"{verdict_note(loaded)} Every subset can be compared on the Ablation "
                       "page.")
    with right:
        st.subheader("Learned fusion weights")
        st.plotly_chart(weights_figure(loaded.fusion_weights()), key="home_weights")

    st.subheader("Cross-validated performance")
    overall = loaded.meta.get("cv_overall")
    origin = f"subject-grouped cross-validation ({loaded.meta.get('cv')}), stored in the model"
    if not overall:
        cv = load_cv(artifacts_dir(model_path()))
        overall = cv.metrics["overall"] if cv else None
        origin = f"`{artifacts_dir(model_path())}`"
    verdict = loaded.verdict_name
    if overall and verdict in overall:
        pooled = pooled_transfer(load_transfer(artifacts_dir(model_path())))
        if pooled:
            st.warning(
                "Cross-validation inside one collection flatters a model. On a source it has "
                f"never seen (each source held out in turn against held-out people of the other "
                f"class), the verdict scores F1 {pooled['f1']:.3f}, AUROC "
                f"{pooled['auroc'] or float('nan'):.3f} and accuracy {pooled['accuracy']:.3f} "
                f"over {pooled['n']} scored files; expect numbers like these on photos from a new "
                "clinic. Details on the Evaluation page.")
        chosen = overall[verdict]
        *cols, files = st.columns(4)
        for col, (label, key) in zip(cols, (("F1", "f1"), ("AUROC", "auroc"),
                                            ("accuracy", "accuracy")), strict=True):
            col.metric(f"Verdict {label}", "n/a" if chosen[key] is None else f"{chosen[key]:.3f}")
        files.metric("Files scored", chosen["n"])
        st.caption(f"From {origin}. Each fold is scored at its own fold model's threshold (the "
                   "table's threshold column is their mean); the loaded model's own decision "
                   f"threshold is {loaded.threshold(loaded.verdict_modalities):.3f}, chosen on its "
                   "validation split.")
        with st.expander("Every modality subset and baseline"):
            st.dataframe(metrics_table(overall, verdict_first(overall, verdict), verdict),
                         key="home_metrics")
    else:
        st.info("This model was trained without cross-validation, so there are no "
                "cross-validated metrics to show.")
