"""Face landmark detectors: MediaPipe Face Mesh (default) and MediaPipe Tasks FaceLandmarker.

A detector is created once and reused for every frame of a stream or batch: both MediaPipe graphs
are expensive to build and, in tracking mode, carry state from frame to frame. Use them as context
managers (or call ``close``) so the native graph is released.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from palsy_core.face.topology import N_LANDMARKS

# Fraction of the longer image side added as a border when retrying a detection: MediaPipe's face
# detector misses faces that fill the whole frame (tight crops).
PAD_FRACTION = 0.35
MAX_FACES = 4


@dataclass(frozen=True)
class Detection:
    """The largest face found in one frame.

    ``points`` is (478, 3) float32 in source-image pixels: x right, y down, z relative depth in the
    same pixel scale as x (smaller is closer to the camera). ``blendshapes`` holds the 52
    ARKit-style scores when the Tasks backend is used, else None.
    """

    points: np.ndarray
    n_faces: int
    blendshapes: np.ndarray | None = None


class LandmarkDetector(Protocol):
    """What the pipeline needs from a detector."""

    name: str
    has_blendshapes: bool

    def detect(self, rgb: np.ndarray, timestamp_ms: int | None = None) -> Detection | None: ...

    def close(self) -> None: ...


def _pad(rgb: np.ndarray, pad: int) -> np.ndarray:
    return np.pad(rgb, ((pad, pad), (pad, pad), (0, 0)), mode="edge")


def _area(points: np.ndarray) -> float:
    return float(np.ptp(points[:, 0]) * np.ptp(points[:, 1]))


def _to_pixels(landmarks, width: int, height: int) -> np.ndarray:
    pts = np.array([(p.x, p.y, p.z) for p in landmarks], dtype=np.float32)
    pts[:, 0] *= width
    pts[:, 1] *= height
    pts[:, 2] *= width
    return pts


class _DetectorBase:
    """Two-stage detection shared by both backends.

    Photos (static mode): MediaPipe's full-range face detector finds and counts every face, the
    largest is cropped with a margin and the landmark model runs on that crop, so small faces in
    large group photos still get accurate landmarks. Streams (tracking mode): the landmark graph
    runs on the whole frame and follows the face between frames. Either way, when nothing is found
    the frame is retried with an edge-replicated border, because MediaPipe misses faces that fill
    the whole frame.
    """

    name = "base"
    has_blendshapes = False

    def __init__(self, tracking: bool, min_confidence: float) -> None:
        from mediapipe.python.solutions.face_detection import FaceDetection

        self.tracking = tracking
        self._finder = FaceDetection(model_selection=1, min_detection_confidence=min_confidence)

    def _mesh(self, rgb: np.ndarray, timestamp_ms: int | None, static: bool):
        """(faces as (478, 3) pixel arrays, blendshapes of the largest face or None) or None."""
        raise NotImplementedError

    def _boxes(self, rgb: np.ndarray) -> list[tuple[int, int, int, int]]:
        result = self._finder.process(rgb)
        h, w = rgb.shape[:2]
        boxes = []
        for det in result.detections or []:
            b = det.location_data.relative_bounding_box
            boxes.append((int(b.xmin * w), int(b.ymin * h), int(b.width * w), int(b.height * h)))
        return boxes

    def _static(self, rgb: np.ndarray) -> tuple[np.ndarray, int, np.ndarray | None] | None:
        boxes = self._boxes(rgb)
        if boxes:
            x, y, bw, bh = max(boxes, key=lambda b: b[2] * b[3])
            side = int(2.0 * max(bw, bh))
            cx, cy = x + bw // 2, y + bh // 2
            x0, y0 = cx - side // 2, cy - side // 2
            pad = max(0, -x0, -y0, x0 + side - rgb.shape[1], y0 + side - rgb.shape[0])
            crop = _pad(rgb, pad)[y0 + pad : y0 + pad + side, x0 + pad : x0 + pad + side]
            found = self._mesh(np.ascontiguousarray(crop), None, static=True)
            if found is not None:
                faces, blend = found
                points = max(faces, key=_area)
                points[:, 0] += x0
                points[:, 1] += y0
                return points, max(len(boxes), len(faces)), blend
        found = self._mesh(rgb, None, static=True)
        if found is None:
            return None
        faces, blend = found
        return max(faces, key=_area), max(len(boxes), len(faces)), blend

    def _locate(self, rgb: np.ndarray, timestamp_ms: int | None):
        if not self.tracking:
            return self._static(rgb)
        found = self._mesh(rgb, timestamp_ms, static=False)
        if found is None:
            return None
        faces, blend = found
        return max(faces, key=_area), len(faces), blend

    def detect(self, rgb: np.ndarray, timestamp_ms: int | None = None) -> Detection | None:
        """Landmarks of the largest face in an RGB uint8 image, or None when there is no face."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 image, got shape {rgb.shape} {rgb.dtype}")
        rgb = np.ascontiguousarray(rgb)
        found = self._locate(rgb, timestamp_ms)
        if found is None:
            pad = round(PAD_FRACTION * max(rgb.shape[:2]))
            found = self._static(_pad(rgb, pad))
            if found is None:
                return None
            found[0][:, :2] -= pad
        points, n_faces, blend = found
        return Detection(points=points, n_faces=n_faces, blendshapes=blend)

    def close(self) -> None:
        self._finder.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class FaceMeshDetector(_DetectorBase):
    """MediaPipe Face Mesh from the mediapipe wheel (478 points with refined irises).

    ``tracking=True`` is for video streams, ``False`` for photos.
    """

    name = "facemesh"

    def __init__(self, tracking: bool = False, min_confidence: float = 0.5) -> None:
        super().__init__(tracking, min_confidence)
        from mediapipe.python.solutions.face_mesh import FaceMesh

        def make(static: bool) -> FaceMesh:
            return FaceMesh(
                static_image_mode=static,
                max_num_faces=MAX_FACES,
                refine_landmarks=True,
                min_detection_confidence=min_confidence,
                min_tracking_confidence=min_confidence,
            )

        self._static_graph = make(static=True)
        self._tracking_graph = make(static=False) if tracking else None

    def _mesh(self, rgb, timestamp_ms, static):
        graph = self._static_graph if static else self._tracking_graph
        result = graph.process(rgb)
        if not result.multi_face_landmarks:
            return None
        h, w = rgb.shape[:2]
        faces = [_to_pixels(f.landmark, w, h) for f in result.multi_face_landmarks]
        faces = [f for f in faces if len(f) == N_LANDMARKS]
        return (faces, None) if faces else None

    def close(self) -> None:
        super().close()
        self._static_graph.close()
        if self._tracking_graph is not None:
            self._tracking_graph.close()


class TaskLandmarkerDetector(_DetectorBase):
    """MediaPipe Tasks FaceLandmarker from a ``face_landmarker.task`` file.

    An alternative landmark detector; ``Detection.blendshapes`` holds its 52 raw scores of one
    pass (the model's blendshape modality is computed by
    ``palsy_core.modalities.blendshapes`` from both passes, whichever detector is used).
    """

    name = "tasks"
    has_blendshapes = True

    def __init__(self, model_path: str | Path, tracking: bool = False, min_confidence: float = 0.5):
        path = Path(model_path)
        if not path.is_file():
            raise FileNotFoundError(f"FaceLandmarker model not found: {path}")
        super().__init__(tracking, min_confidence)
        from mediapipe.tasks.python import BaseOptions
        from mediapipe.tasks.python.vision import FaceLandmarker, FaceLandmarkerOptions, RunningMode

        def make(mode: RunningMode) -> FaceLandmarker:
            options = FaceLandmarkerOptions(
                base_options=BaseOptions(model_asset_buffer=path.read_bytes()),
                running_mode=mode,
                num_faces=MAX_FACES,
                min_face_detection_confidence=min_confidence,
                min_tracking_confidence=min_confidence,
                output_face_blendshapes=True,
            )
            return FaceLandmarker.create_from_options(options)

        self._image = make(RunningMode.IMAGE)
        self._video = make(RunningMode.VIDEO) if tracking else None
        self._last_ts = -1

    def _mesh(self, rgb, timestamp_ms, static):
        import mediapipe as mp

        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb)
        if static or self._video is None:
            result = self._image.detect(image)
        else:
            ts = max(int(timestamp_ms or 0), self._last_ts + 1)  # VIDEO mode needs rising stamps
            self._last_ts = ts
            result = self._video.detect_for_video(image, ts)
        if not result.face_landmarks:
            return None
        h, w = rgb.shape[:2]
        faces = [_to_pixels(f, w, h) for f in result.face_landmarks]
        largest = int(np.argmax([_area(f) for f in faces]))
        blend = None
        if result.face_blendshapes:
            blend = np.array([c.score for c in result.face_blendshapes[largest]], dtype=np.float32)
        return faces, blend

    def close(self) -> None:
        super().close()
        self._image.close()
        if self._video is not None:
            self._video.close()


def make_detector(task_model: str | Path | None = None, tracking: bool = False) -> LandmarkDetector:
    """The Tasks backend when a ``face_landmarker.task`` path is given, else Face Mesh."""
    if task_model:
        return TaskLandmarkerDetector(task_model, tracking=tracking)
    return FaceMeshDetector(tracking=tracking)
