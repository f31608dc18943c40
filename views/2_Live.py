"""Live camera: the webcam stream scored frame by frame, with overlays and live modality toggles,
or a guided exam (prompts, countdowns, capture windows) graded per region and side.

The frame callback runs in streamlit-webrtc's worker thread and only talks to this session's
``LiveScorer`` (``st.session_state["live_scorer"]``) and ``ExamRecorder``; the toggles below update
the scorer between frames, and the scores and the exam's progress are polled while the stream
plays. Session state ``live_exam_result`` holds the graded exam (recorder version, exam, scored).
"""

import streamlit as st
from streamlit_webrtc import WebRtcMode, webrtc_streamer

from palsy_core.inference.exam import PROTOCOL
from palsy_core.inference.exam_live import CAPTURE_S, COUNTDOWN_S, grade_recording
from palsy_core.inference.live import OVERLAYS, LiveScorer
from palsy_core.metrics import FLAG_NAMES, retake_hint
from palsy_core.registry import modality
from ui.common import disclaimer, get_model, verdict_note
from ui.exam import show_exam
from ui.live import (
    ICE_ENV,
    ICE_SECRET,
    frame_callback,
    rtc_configuration,
    server_urls,
    session_recorder,
    session_scorer,
    use_marker_jitter_buffer,
)

OVERLAY_LABELS = {"lines": "Line segments", "landmarks": "Landmarks", "none": "None"}
POLL_S = 0.5
MODES = ("Screening", "Guided exam")
COUNTDOWNS = (1.0, 2.0, 3.0, 5.0)
RESULT = "live_exam_result"

st.set_page_config(page_title="Live camera · palsy-fusion", layout="wide")
st.title("Live camera")
disclaimer()
st.markdown(
    "Your webcam, scored frame by frame by the same pipeline and model as uploaded videos. "
    "P(palsy) is averaged over the last frames with a face; toggling a modality takes effect on "
    "the next frame (and restarts the average). Left and right are the subject's own: the "
    "stream is not mirrored. Nothing leaves this machine."
)

loaded = get_model()
if loaded is None:
    st.stop()
try:
    rtc_config, ice_origin = rtc_configuration()
except ValueError as exc:
    st.error(f"The WebRTC ICE server setting is invalid: {exc}")
    st.stop()

scorer: LiveScorer = session_scorer(loaded)
recorder = session_recorder()

controls, stream = st.columns([2, 3])
with controls:
    mode = st.radio("Mode", MODES, horizontal=True, key="live_mode",
                    help="Screening: a rolling P(palsy). Guided exam: seven standard movements, "
                         "prompted one by one, graded per region and side.")
    exam_mode = mode == MODES[1]
    if not exam_mode:
        recorder.cancel()
    scorer.set_observer(recorder.observe if exam_mode else None)
    st.subheader("Modalities")
    enabled = [m for m in scorer.modalities
               if st.toggle(modality(m).name, value=m in loaded.verdict_modalities,
                            key=f"live_modality_{m}",
                            help=modality(m).description)]
    if verdict_note(loaded):
        st.caption(verdict_note(loaded))
    if enabled:
        scorer.set_enabled(enabled)
    else:
        st.error("Enable at least one modality; scoring continues with the previous choice.")
    overlay = st.radio("Overlay", OVERLAYS, format_func=OVERLAY_LABELS.get, horizontal=True,
                       key="live_overlay")
    scorer.set_overlay(overlay)

with stream:
    use_marker_jitter_buffer()  # frames reach the scorer a frame interval sooner
    ctx = webrtc_streamer(
        key="live",
        mode=WebRtcMode.SENDRECV,
        rtc_configuration=rtc_config,
        media_stream_constraints={"video": True, "audio": False},
        video_frame_callback=frame_callback(scorer, recorder),
        async_processing=True,
    )

if not ctx.state.playing:
    scorer.reset()  # a new stream starts with an empty window


@st.fragment(run_every=POLL_S if ctx.state.playing else None)
def live_scores() -> None:
    """The latest rolling score, polled from the scorer while the stream plays."""
    result = scorer.latest()
    if result is None:
        st.info("Start the camera to see the rolling P(palsy), verdict and frame rate.")
        return
    # The verdict has a row of its own: "no palsy detected" never fits a quarter of a laptop
    # screen at the metric's size.
    st.metric("Verdict", result.verdict)
    top, bottom = st.columns(2), st.columns(2)
    top[0].metric("Rolling P(palsy)",
                  "–" if result.p_rolling is None else f"{result.p_rolling:.2f}")
    top[1].metric("Affected side, subject's own", result.side or "–")
    bottom[0].metric("Processing rate", f"{result.fps:.1f} fps",
                     help=f"frames scored per second over the last frames (wall clock); this "
                          f"frame took {result.latency_ms:.0f} ms to score")
    bottom[1].metric("Face frames", result.window_faces,
                     help=f"recent frames with a face that the rolling score averages; on "
                          f"{result.window_fresh} of them the face-network and blendshape views "
                          f"were computed on that frame (they are recomputed every "
                          f"{scorer.heavy_every} frames), the others reused the previous frame's")
    if result.inconclusive:
        st.warning(f"No verdict: {result.inconclusive}. {retake_hint(result.inconclusive)}")
    elif result.caution:
        st.info(f"Caution: {result.caution}.", icon=":material/rotate_right:")
    names = ", ".join(modality(m).name for m in result.enabled)
    flags = ", ".join(FLAG_NAMES.get(f, f) for f in result.flags) or "none"
    st.caption(f"{result.window_faces} recent frames with a face ({result.window_fresh} with "
               "every view computed on that frame) · threshold "
               f"{result.threshold:.2f} · modalities: {names} · this frame's flags: {flags}")


def grade_if_new() -> bool:
    """Grade the recorded exam once its movements are all captured (again after a redo);
    True when a new grade was stored."""
    status = recorder.status()
    version = recorder.version
    stored = st.session_state.get(RESULT)
    if status.phase != "done" or not status.captured or (stored and stored[0] == version):
        return False
    with st.spinner("Grading the exam…"):
        exam, scored = grade_recording(loaded, recorder)
    st.session_state[RESULT] = (version, exam, scored)
    return True


# Poll while the stream plays, and while an exam runs even if the component briefly reports
# otherwise (a rerun from a Redo click): the prompt must never freeze on a stale step.
@st.fragment(run_every=POLL_S if ctx.state.playing or recorder.status().running else None)
def exam_panel() -> None:
    """The exam's progress: the movement asked for, its countdown, what is recorded."""
    status = recorder.status()
    if status.phase in ("countdown", "capture"):
        m = status.movement
        st.progress((status.step - 1) / status.steps,
                    text=f"Movement {status.step} of {status.steps}: {m.name}")
        st.markdown(f"### {m.prompt}")
        if status.phase == "countdown":
            st.caption(f"Get ready: capture starts in {status.seconds_left:.0f} s.")
        else:
            st.caption(f"Hold it… recording ({status.face_frames} frames with a face so far).")
        if status.stalled:
            st.warning("No frames from the camera"
                       + ("" if status.since_frame_s is None else
                          f" for {status.since_frame_s:.0f} s")
                       + ": is it running? Press Start on the video; recording resumes with "
                         "the next frame.")
        st.button("Stop the exam", key="live_exam_stop", on_click=recorder.cancel)
        return
    if grade_if_new():
        st.rerun()
    countdown = st.select_slider("Countdown before each movement", COUNTDOWNS, COUNTDOWN_S,
                                 format_func=lambda s: f"{s:g} s", key="live_exam_countdown")
    st.button("Start the exam", type="primary", key="live_exam_start", on_click=recorder.start,
              args=(countdown,), disabled=not ctx.state.playing, icon=":material/play_arrow:")
    st.caption(
        f"{len(PROTOCOL)} movements, each prompted with a countdown and recorded for about "
        f"{CAPTURE_S:.0f} s (about {len(PROTOCOL) * (countdown + CAPTURE_S):.0f} s in all); the "
        "prompt is also drawn on the video. "
        + ("" if ctx.state.playing else "Start the camera first. ")
        + (f"Recorded: {len(status.captured)} of {len(PROTOCOL)} movements."
           if status.captured else ""))
    st.page_link("views/6_Exam.py", label="Have a recording of the exam? Grade it here",
                 icon=":material/assignment:")


with controls:
    if exam_mode:
        exam_panel()
    else:
        live_scores()

if exam_mode:
    grade_if_new()
    result = st.session_state.get(RESULT)
    if result is not None:
        st.header("Exam results")
        show_exam(result[1], result[2], "live_exam", "Live guided exam", redo=recorder.redo)

with st.expander("Connection: ICE servers"):
    urls = server_urls(rtc_config)
    st.markdown(f"**ICE servers:** {', '.join(f'`{u}`' for u in urls) if urls else 'none'}, "
                f"{ice_origin}.")
    st.markdown(
        "Without ICE servers the stream works on this machine (`localhost`) with no network. To "
        "use the page from another machine, configure STUN/TURN servers, either with the "
        f"environment variable `{ICE_ENV}` (a JSON list, takes precedence):\n\n"
        f"```bash\n{ICE_ENV}='[{{\"urls\": [\"stun:stun.example.org:3478\"]}}, "
        '{"urls": "turn:turn.example.org:3478", "username": "u", "credential": "p"}]\' '
        "make run\n```\n"
        f"or in `.streamlit/secrets.toml`:\n\n"
        f"```toml\n[[{ICE_SECRET}]]\nurls = [\"stun:stun.example.org:3478\"]\n\n"
        f"[[{ICE_SECRET}]]\nurls = \"turn:turn.example.org:3478\"\nusername = \"u\"\n"
        "credential = \"p\"\n```"
    )
