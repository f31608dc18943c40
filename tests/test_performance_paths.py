"""The fast paths compute exactly what the plain code computes, on real faces.

Each test checks a speed or memory change against a straightforward reference written here (the
code it replaced): pipelined and prefetched analysis against frame-by-frame ``analyse_frame``,
chunked stacking against stacking every frame, batched drawing against one ``cv2.line`` per
segment, region-limited compositing against whole-frame compositing, side-by-side encoders against
``FusionModel.encode``. Equality is exact throughout. No timing is asserted (see ``bench/``).
"""

from __future__ import annotations

import threading
from contextlib import closing

import cv2
import numpy as np
import pytest
import torch
from conftest import make_test_model
from PIL import Image

from palsy_core.extraction.pipeline import (
    MediaAnalysis,
    Settings,
    _prefetched,
    analyse_frame,
    analyse_media,
    iter_analysed_frames,
)
from palsy_core.face.alignment import align
from palsy_core.face.landmarks import make_detector
from palsy_core.face.topology import N_LANDMARKS
from palsy_core.inference.live import LiveScorer
from palsy_core.inference.scoring import ParallelEncoder, ScoredMedia, load_model, torch_threads
from palsy_core.io.media import MediaError, iter_media_frames
from palsy_core.modalities import line_segments as ls
from palsy_core.modalities.blendshapes import DIM as BLENDSHAPES_DIM
from palsy_core.modalities.face_net import DIM as FACE_ASYM_DIM
from palsy_core.modalities.features import clip_features
from palsy_core.model.batches import FrameArrays, mirror_arrays, resize_images, to_inputs

# face_noface.mov at 12 frames/s: about 77 frames, a face in the first part only, so the results
# cross a stacking chunk (64 frames) and hold both face and no-face rows.
VIDEO, VIDEO_SETTINGS = "face_noface.mov", Settings(sample_fps=12, max_frames=0)
PIPELINE_THREADS = ("palsy-decode", "palsy-modalities", "palsy-encode")


# --- references: the plain code the fast paths replaced --------------------------------------


def reference_render(canvas: np.ndarray, xy: np.ndarray) -> None:
    """One ``cv2.line`` per segment: contours, construction lines, midline."""
    interocular = float(np.linalg.norm(xy[ls.LEFT_IRIS] - xy[ls.RIGHT_IRIS]))
    thickness = max(1, round(ls.THICKNESS_PER_INTEROCULAR * interocular))

    def line(a, b, colour):
        fixed = [(round(float(p[0]) * 16), round(float(p[1]) * 16)) for p in (a, b)]
        cv2.line(canvas, *fixed, colour, thickness, cv2.LINE_AA, 4)

    for i, j in ls._CONTOUR_EDGES:
        line(xy[i], xy[j], ls.CONTOUR_COLOUR)
    for right, left in ls._PAIRS:
        a, b = xy[right], xy[left]
        span = np.linalg.norm(b - a)
        if span >= 1e-6:
            ext = (b - a) / span * ls.CONSTRUCTION_EXTENSION * interocular
            line(a - ext, b + ext, ls.CONSTRUCTION_COLOUR)
    line(*ls._midline(xy, interocular), ls.MIDLINE_COLOUR)


def reference_composite(rgb: np.ndarray, layer: np.ndarray, alpha: float) -> np.ndarray:
    """Blending over the whole frame."""
    coverage = layer.max(axis=2, keepdims=True).astype(np.float32) / 255.0
    out = rgb * (1.0 - alpha * coverage) + alpha * layer.astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def reference_stack(frames, settings: Settings, kind: str) -> dict[str, np.ndarray]:
    """Every frame's arrays stacked directly (zeros/NaN where there is no face)."""
    def stack(attr, shape, dtype, fill):
        out = np.full((len(frames), *shape), fill, dtype=dtype)
        for i, fr in enumerate(frames):
            if getattr(fr, attr) is not None:
                out[i] = getattr(fr, attr)
        return out

    s = settings.size
    features = stack("features", (frames[0].features.shape[0],), np.float32, np.nan)
    return {"timestamps": np.array([fr.timestamp_s for fr in frames]),
            "frame_index": np.array([fr.index for fr in frames]),
            "n_faces": np.array([fr.n_faces for fr in frames], dtype=np.int32),
            "pose": np.array([fr.pose for fr in frames], dtype=np.float32),
            "points": stack("points", (N_LANDMARKS, 3), np.float32, np.nan),
            "rgb": stack("rgb", (s, s, 3), np.uint8, 0),
            "lines": stack("lines", (s, s, 3), np.uint8, 0),
            "landmarks": stack("landmarks", (N_LANDMARKS, 3), np.float32, np.nan),
            "features": features,
            "clip_features": clip_features(features) if kind == "video" else None}


def assert_analysis_equals(analysis: MediaAnalysis, frames, settings: Settings) -> None:
    assert analysis.flags == [fr.flags for fr in frames]
    for key, want in reference_stack(frames, settings, analysis.kind).items():
        if want is not None:
            got = getattr(analysis, key)
            assert got.dtype == want.dtype, key
            np.testing.assert_array_equal(got, want, err_msg=key)


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def frame_by_frame(pyfeat_dir):
    """The video analysed one frame at a time on one thread, as ``analyse_frame`` documents."""
    frames = list(iter_media_frames(pyfeat_dir / VIDEO, VIDEO, VIDEO_SETTINGS.sample_fps,
                                    VIDEO_SETTINGS.max_frames))
    with make_detector(tracking=True) as det:
        return [analyse_frame(f.rgb, det, VIDEO_SETTINGS, f.index, f.timestamp_s)
                for f in frames]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    return load_model(make_test_model(tmp_path_factory.mktemp("perf") / "m.pt"))


@pytest.fixture(scope="module")
def faces(pyfeat_dir, detector):
    """Real faces (video frames and photos) with their source-pixel landmarks."""
    images = [f.rgb for f in iter_media_frames(pyfeat_dir / "WolfgangLanger_Pexels.mp4",
                                               "WolfgangLanger_Pexels.mp4", 1.0, 6)]
    images += [np.asarray(Image.open(pyfeat_dir / n).convert("RGB"))
               for n in ("single_face.jpg", "multi_face.jpg", "0-f1-su-ph.jpg")]
    out = [(rgb, detector.detect(rgb).points) for rgb in images]
    assert len(out) == 9
    return out


# --- analysis ---------------------------------------------------------------------------------


def test_pipelined_analysis_equals_frame_by_frame(pyfeat_dir, frame_by_frame):
    analysis = analyse_media(pyfeat_dir / VIDEO, VIDEO, VIDEO_SETTINGS)
    assert analysis.n_frames > 64 and 0 < analysis.has_face.sum() < analysis.n_frames
    assert_analysis_equals(analysis, frame_by_frame, VIDEO_SETTINGS)
    # The lazy iterator yields the same frames, in order.
    lazy = list(iter_analysed_frames(pyfeat_dir / VIDEO, VIDEO, VIDEO_SETTINGS))
    assert [fr.index for fr in lazy] == [fr.index for fr in frame_by_frame]
    for got, want in zip(lazy, frame_by_frame, strict=True):
        for key in ("rgb", "lines", "features"):
            np.testing.assert_array_equal(getattr(got, key), getattr(want, key))


def test_chunked_stacking_equals_stacking_every_frame(frame_by_frame):
    stacked = MediaAnalysis.from_frames(VIDEO, "video", VIDEO_SETTINGS, frame_by_frame)
    assert_analysis_equals(stacked, frame_by_frame, VIDEO_SETTINGS)
    assert frame_by_frame[0].rgb is not None  # the caller's frames keep their images


def test_photo_analysis_equals_analyse_frame(pyfeat_dir, detector):
    settings = Settings(size=160)
    analysis = analyse_media(pyfeat_dir / "multi_face.jpg", "multi_face.jpg", settings,
                             detector=detector)
    rgb = next(iter_media_frames(pyfeat_dir / "multi_face.jpg", "multi_face.jpg")).rgb
    assert_analysis_equals(analysis, [analyse_frame(rgb, detector, settings)], settings)


def test_prefetch_keeps_order_and_reraises_errors(pyfeat_dir):
    def frames_then_failure():
        yield from iter_media_frames(pyfeat_dir / "single_face.mp4", "single_face.mp4", 5.0, 4)
        raise MediaError("single_face.mp4: cut short")

    plain = [f.index for f in iter_media_frames(pyfeat_dir / "single_face.mp4",
                                                "single_face.mp4", 5.0, 4)]
    seen = []
    with pytest.raises(MediaError, match="cut short"):
        for frame in _prefetched(frames_then_failure(), depth=2):
            seen.append(frame.index)
    assert seen == plain and len(plain) == 4


def test_bad_file_still_raises_a_media_error(tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is text, not a video")
    with pytest.raises(MediaError, match=r"notes\.mp4"):
        analyse_media(bad, bad.name, Settings())
    assert not [t for t in threading.enumerate() if t.name.startswith(PIPELINE_THREADS)]


def test_stopping_early_ends_the_pipeline_threads(pyfeat_dir):
    frames = iter_analysed_frames(pyfeat_dir / "WolfgangLanger_Pexels.mp4",
                                  "WolfgangLanger_Pexels.mp4", Settings(sample_fps=0))
    with closing(frames):
        first = [next(frames) for _ in range(3)]
        assert [t for t in threading.enumerate() if t.name.startswith("palsy-decode")]
    assert [fr.index for fr in first] == [0, 1, 2] and all(fr.has_face for fr in first)
    assert not [t for t in threading.enumerate() if t.name.startswith(PIPELINE_THREADS)]


# --- drawing ----------------------------------------------------------------------------------


def test_line_segment_image_equals_segment_by_segment_drawing(faces):
    rng = np.random.default_rng(0)
    for _, points in faces:
        for jitter in (0.0, 0.8):
            aligned = align(points + rng.normal(0, jitter, points.shape).astype(np.float32))
            for size in (64, 224):
                xy = aligned.points[:, :2].astype(np.float64) * size / 224
                want = np.zeros((size, size, 3), np.uint8)
                reference_render(want, xy)
                assert want.any()
                np.testing.assert_array_equal(ls.draw_line_segments(xy, size), want)


def test_overlays_equal_whole_frame_compositing(faces):
    for rgb, points in faces:
        h = rgb.shape[0]
        off_frame = points + np.array([-points[:, 0].min() - 25, h - points[:, 1].max() + 30, 0],
                                      np.float32)  # face cut by the left and bottom edges
        for pts in (points, off_frame):
            xy = pts[:, :2].astype(np.float64)
            layer = np.zeros_like(rgb)
            reference_render(layer, xy)
            for alpha in (0.85, 0.3):
                np.testing.assert_array_equal(ls.overlay_line_segments(rgb, pts, alpha),
                                              reference_composite(rgb, layer, alpha))
            dots = np.zeros_like(rgb)
            radius = max(1, round(ls.DOT_RADIUS_PER_INTEROCULAR
                                  * np.linalg.norm(xy[ls.LEFT_IRIS] - xy[ls.RIGHT_IRIS])))
            for x, y in xy:
                cv2.circle(dots, (round(x * 16), round(y * 16)), radius << 4,
                           ls.LANDMARK_COLOUR, -1, cv2.LINE_AA, 4)
            np.testing.assert_array_equal(ls.draw_landmarks(rgb, pts),
                                          reference_composite(rgb, dots, 1.0))
        assert (ls.overlay_line_segments(rgb, points) != rgb).any()


# --- model ------------------------------------------------------------------------------------


def test_resizing_selected_rows_equals_resizing_their_copy(frame_by_frame):
    images = np.stack([fr.rgb for fr in frame_by_frame if fr.rgb is not None][:9])
    rows = np.array([7, 0, 3, 3])
    np.testing.assert_array_equal(resize_images(images, 64, rows), resize_images(images[rows], 64))
    np.testing.assert_array_equal(resize_images(images, 224, rows), images[rows])
    assert resize_images(images, 224) is images


def test_model_inputs_equal_the_plain_formula(frame_by_frame, loaded):
    faces = [fr for fr in frame_by_frame if fr.has_face][:5]
    every_value = np.broadcast_to(np.arange(256, dtype=np.uint8)[None, :, None, None],
                                  (1, 256, 4, 3))
    for rgb, lines in ((np.stack([fr.rgb for fr in faces]), np.stack([fr.lines for fr in faces])),
                       (every_value, every_value[:, ::-1])):
        arrays = FrameArrays({
            "rgb": rgb, "lines": lines,
            "landmarks": np.zeros((len(rgb), N_LANDMARKS, 3), np.float32),
            "features": np.zeros((len(rgb), loaded.model.config.n_features), np.float32),
            "face_asym": np.zeros((len(rgb), FACE_ASYM_DIM), np.float32),
            "blendshapes": np.zeros((len(rgb), BLENDSHAPES_DIM), np.float32)})
        got = to_inputs(arrays, loaded.normaliser, ("rgb", "lines"))
        mean = np.array([0.485, 0.456, 0.406], np.float32)
        std = np.array([0.229, 0.224, 0.225], np.float32)
        want = {"rgb": (rgb.astype(np.float32) / 255.0 - mean) / std,
                "lines": lines.astype(np.float32) / 255.0}
        for key, value in want.items():
            assert got[key].is_contiguous()
            assert torch.equal(got[key], torch.from_numpy(value).permute(0, 3, 1, 2)), key


def test_scored_media_equals_encoding_every_face_at_once(pyfeat_dir, frame_by_frame, loaded):
    analysis = MediaAnalysis.from_frames(VIDEO, "video", VIDEO_SETTINGS, frame_by_frame)
    scored = ScoredMedia(loaded, analysis, batch_size=16)
    idx = np.flatnonzero(analysis.has_face)
    size, model = loaded.model.config.image_size, loaded.model
    arrays = FrameArrays({
        "rgb": resize_images(analysis.rgb[idx], size),
        "lines": resize_images(analysis.lines[idx], size), "landmarks": analysis.landmarks[idx],
        "features": analysis.features[idx], "face_asym": analysis.face_asym[idx],
        "blendshapes": analysis.blendshapes[idx]})
    with ParallelEncoder(model) as encoder:
        threads = encoder.threads_each
    want, mirror = {}, {}
    with torch.no_grad(), torch_threads(threads):
        for start in range(0, len(idx), 16):
            part = arrays.take(np.arange(start, min(start + 16, len(idx))))
            for key, emb in model.encode(to_inputs(part, loaded.normaliser, scored.modalities),
                                         scored.modalities).items():
                want.setdefault(key, []).append(emb)
            for key, emb in model.encode(to_inputs(mirror_arrays(part), loaded.normaliser,
                                                   scored.modalities),
                                         scored.modalities).items():
                mirror.setdefault(key, []).append(emb)
        for key, parts in want.items():
            assert torch.equal(scored.embeddings[key], torch.cat(parts)), key
            assert torch.equal(scored.mirror_embeddings[key], torch.cat(mirror[key])), key
        for subset in (scored.modalities, ("rgb",), ("lines", "landmarks", "features")):
            with torch_threads(1):
                out = model.fuse({k: torch.cat(want[k]) for k in subset}, subset)
                out_m = model.fuse({k: torch.cat(mirror[k]) for k in subset}, subset)
            result = scored.score(subset)
            # Mirror-averaged: the mean of the two views' logits.
            logit = (out.palsy_logit.double() + out_m.palsy_logit.double()) / 2
            np.testing.assert_allclose(result.p_frames[idx], torch.sigmoid(logit).numpy(),
                                       rtol=0, atol=1e-12)
            assert np.isnan(result.p_frames[~analysis.has_face]).all()


def test_live_scores_equal_a_plain_forward_pass(pyfeat_dir, loaded):
    frames = list(iter_media_frames(pyfeat_dir / "single_face.mp4", "single_face.mp4", 10.0, 8))
    settings = Settings()
    size = loaded.model.config.image_size
    # heavy_every=1: every view computed on every frame, as the plain pass does (the reuse of
    # the heavy views between frames has its own test in test_live.py).
    with LiveScorer(loaded, settings, heavy_every=1) as scorer, \
            make_detector(tracking=True) as det:
        for f in frames:
            _, result = scorer.process(f.rgb, f.timestamp_s)
            fr = analyse_frame(f.rgb, det, settings, f.index, f.timestamp_s)
            arrays = FrameArrays({
                "rgb": resize_images(fr.rgb[None], size),
                "lines": resize_images(fr.lines[None], size), "landmarks": fr.landmarks[None],
                "features": fr.features[None], "face_asym": fr.face_asym[None],
                "blendshapes": fr.blendshapes[None]})
            with torch.no_grad(), torch_threads(1):
                out = loaded.model(to_inputs(arrays, loaded.normaliser, loaded.modalities))
                out_m = loaded.model(to_inputs(mirror_arrays(arrays), loaded.normaliser,
                                               loaded.modalities))
            logit = (out.palsy_logit.double() + out_m.palsy_logit.double()) / 2
            assert result.p_frame == pytest.approx(float(torch.sigmoid(logit)[0]), abs=1e-6)


def test_encoder_threads_leave_torch_threads_as_they_were(frame_by_frame, loaded):
    analysis = MediaAnalysis.from_frames(VIDEO, "video", VIDEO_SETTINGS, frame_by_frame)
    before = torch.get_num_threads()
    for _ in range(3):
        ScoredMedia(loaded, analysis, batch_size=16).score()
    seen = []
    fresh = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    fresh.start()
    fresh.join()
    assert torch.get_num_threads() == before and seen == [before]
