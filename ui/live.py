"""The live page's plumbing: WebRTC configuration, the per-session scorer and the frame callback.

Offline by default: with no ICE servers configured the browser and the server only exchange
host candidates, which is all a localhost connection needs. Leaving ``iceServers`` unset instead
makes streamlit-webrtc fall back to a public STUN server, and the connection hangs offline.
For remote use, STUN/TURN servers come from ``$PALSY_ICE_SERVERS`` (a JSON list, wins) or the
``ice_servers`` entry of Streamlit secrets.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from typing import Any

import aiortc.rtcrtpreceiver
import av
import streamlit as st
from aiortc.jitterbuffer import JitterBuffer, JitterFrame

from palsy_core.extraction.pipeline import Settings
from palsy_core.inference.exam_live import ExamRecorder
from palsy_core.inference.live import LiveScorer
from palsy_core.inference.scoring import LoadedModel

ICE_ENV = "PALSY_ICE_SERVERS"
ICE_SECRET = "ice_servers"
SCORER_KEY = "live_scorer"  # st.session_state: this session's LiveScorer
RECORDER_KEY = "live_exam_recorder"  # st.session_state: this session's ExamRecorder
NO_ICE = "the offline default: direct connections only, which is all localhost needs"


def parse_ice_servers(value: Any, origin: str) -> list[dict[str, Any]]:
    """Validated RTCIceServer dicts (``urls``, optional ``username``/``credential``)."""
    if not isinstance(value, list | tuple):
        raise ValueError(f"{origin} must be a list of ICE servers like "
                         f'[{{"urls": "stun:stun.example.org:3478"}}], got {type(value).__name__}')
    servers = []
    for i, server in enumerate(value):
        if not isinstance(server, Mapping) or "urls" not in server:  # never echo credentials
            got = f"keys {sorted(server)}" if isinstance(server, Mapping) else type(server).__name__
            raise ValueError(f"{origin}[{i}] must be a mapping with a 'urls' entry, got {got}")
        urls = server["urls"]
        url_list = [urls] if isinstance(urls, str) else list(urls)
        if not url_list or not all(isinstance(u, str) and ":" in u for u in url_list):
            raise ValueError(f"{origin}[{i}].urls must be a URL like 'stun:host:3478' or "
                             f"'turn:host:3478' or a list of them, got {urls!r}")
        unknown = set(server) - {"urls", "username", "credential"}
        if unknown:
            raise ValueError(f"{origin}[{i}] has unknown keys {sorted(unknown)}; use urls, "
                             f"username, credential")
        servers.append({k: (url_list if k == "urls" else str(v)) for k, v in server.items()})
    return servers


def rtc_configuration(
    env: Mapping[str, str] | None = None, secrets: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], str]:
    """The WebRTC configuration and where its ICE servers came from.

    ``env`` defaults to ``os.environ``, ``secrets`` to ``st.secrets`` (absent when there is no
    secrets file). Raises ValueError naming the source when the configured value is malformed.
    """
    env = os.environ if env is None else env
    raw = env.get(ICE_ENV, "").strip()
    if raw:
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"${ICE_ENV} is not valid JSON: {exc}") from exc
        return {"iceServers": parse_ice_servers(value, f"${ICE_ENV}")}, f"from ${ICE_ENV}"
    value = _secret(ICE_SECRET) if secrets is None else secrets.get(ICE_SECRET)
    if value is not None:
        return ({"iceServers": parse_ice_servers(value, f"secrets {ICE_SECRET}")},
                f"from Streamlit secrets ({ICE_SECRET})")
    return {"iceServers": []}, NO_ICE


def _secret(key: str) -> Any:
    try:
        return st.secrets.get(key)
    except FileNotFoundError:  # no secrets.toml anywhere: nothing configured
        return None


def server_urls(config: Mapping[str, Any]) -> list[str]:
    """The ICE server URLs of a configuration, for display (credentials left out)."""
    return [u for server in config["iceServers"] for u in server["urls"]]


def session_scorer(loaded: LoadedModel) -> LiveScorer:
    """This session's scorer, built once (one tracking detector per session), rebuilt only when
    the model changes. Kept in ``st.session_state[SCORER_KEY]``."""
    scorer = st.session_state.get(SCORER_KEY)
    if scorer is not None and scorer.loaded is loaded:
        return scorer
    if scorer is not None:
        scorer.close()
    scorer = LiveScorer(loaded, Settings())
    st.session_state[SCORER_KEY] = scorer
    return scorer


def session_recorder() -> ExamRecorder:
    """This session's guided-exam recorder (``st.session_state[RECORDER_KEY]``)."""
    if RECORDER_KEY not in st.session_state:
        st.session_state[RECORDER_KEY] = ExamRecorder()
    return st.session_state[RECORDER_KEY]


class MarkerJitterBuffer(JitterBuffer):
    """aiortc's jitter buffer, releasing a video frame as soon as its last packet arrives.

    aiortc (1.16) knows a frame is complete only when a packet of the *next* frame arrives, so
    every received frame waits one frame interval (33 ms at 30 frames/s) before it is decoded.
    The sender marks a frame's last packet with the RTP marker bit (RFC 7741 for VP8, RFC 6184
    for H.264; browsers set it): when the packets from the buffer's start up to a marked one are
    all there and share one timestamp, that frame is complete and is released at once. A frame
    whose marked packet was lost still leaves the stock way, when the next frame begins.
    """

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        if self._is_video and self._origin is not None:
            packets = []
            for count in range(self.capacity):
                packet = self._packets[(self._origin + count) % self.capacity]
                if packet is None or (packets and packet.timestamp != packets[0].timestamp):
                    break
                packets.append(packet)
                if packet.marker:
                    self.remove(count + 1)
                    return JitterFrame(data=b"".join(p._data for p in packets),  # type: ignore
                                       timestamp=packet.timestamp)
        return super()._remove_frame(sequence_number)


def use_marker_jitter_buffer() -> None:
    """Make aiortc's receivers (created from now on) use :class:`MarkerJitterBuffer`; the live
    page calls it before it starts a stream. Idempotent."""
    aiortc.rtcrtpreceiver.JitterBuffer = MarkerJitterBuffer


def frame_callback(scorer: LiveScorer, recorder: ExamRecorder | None = None
                   ) -> Callable[[av.VideoFrame], av.VideoFrame]:
    """streamlit-webrtc's ``video_frame_callback``: score a frame, return it annotated (with the
    exam's prompt while a guided exam runs).

    It runs in the WebRTC worker thread, so it touches only the scorer and the recorder (never
    ``st.*``); both guard their state with locks.
    """

    def callback(frame: av.VideoFrame) -> av.VideoFrame:
        image, _ = scorer.process(frame.to_ndarray(format="rgb24"), frame.time)
        if recorder is not None:
            image = recorder.annotate(image)
        return av.VideoFrame.from_ndarray(image, format="rgb24")

    return callback
