"""Alignment to a canonical face frame, head pose and per-frame quality flags.

The aligned frame is a similarity transform of the source image: roll removed on the
interpupillary line, scale fixed by the interocular (iris-to-iris) distance, eye midpoint placed at
a fixed position. Asymmetry measured in this frame is independent of where the face sat in the
photo, how large it was and how the head was tilted in the image plane.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from palsy_core.face.topology import LEFT_IRIS, N_MESH, RIGHT_IRIS, canonical_face

# Aligned frame geometry, as fractions of the output size.
EYE_Y = 0.40
INTEROCULAR = 0.32

# Quality thresholds.
MAX_YAW_DEG = 25.0
MAX_PITCH_DEG = 25.0
MIN_INTEROCULAR_PX = 28.0
MIN_SHARPNESS = 15.0  # variance of the Laplacian on the 224 px aligned grey face



@dataclass(frozen=True)
class HeadPose:
    """Degrees. yaw > 0: face turned towards the subject's left; pitch > 0: chin up;
    roll > 0: head tilted towards the subject's left shoulder (in the image plane)."""

    yaw: float
    pitch: float
    roll: float


@dataclass(frozen=True)
class Alignment:
    """How one face maps into the aligned frame."""

    matrix: np.ndarray  # 2x3 affine, source pixels -> aligned pixels
    size: int
    points: np.ndarray  # (478, 3) landmarks in aligned pixels (z scaled like x, y)
    pose: HeadPose
    interocular_px: float  # in the source image
    flags: tuple[str, ...] = field(default=())


def _centre_x(size: int) -> float:
    """Column of the facial midline: the image's pixel-centre axis, so ``np.fliplr`` of an aligned
    crop is exactly the aligned crop of the mirrored photo."""
    return (size - 1) / 2.0


def roll_degrees(points: np.ndarray) -> float:
    """Angle of the interpupillary line, subject's right iris to left iris, in image degrees."""
    d = points[LEFT_IRIS, :2] - points[RIGHT_IRIS, :2]
    return float(np.degrees(np.arctan2(d[1], d[0])))


def similarity_matrix(points: np.ndarray, size: int) -> np.ndarray:
    """2x3 affine taking the source image into the aligned frame."""
    right = points[RIGHT_IRIS, :2].astype(np.float64)
    left = points[LEFT_IRIS, :2].astype(np.float64)
    centre = (right + left) / 2.0
    dist = float(np.linalg.norm(left - right))
    if dist < 1e-6:
        raise ValueError("degenerate landmarks: both iris centres coincide")
    scale = INTEROCULAR * size / dist
    m = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), roll_degrees(points), scale)
    m[:, 2] += np.array([_centre_x(size), EYE_Y * size]) - centre
    return m


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2x3 similarity to (N, 3) points; z is scaled by the same factor as x and y."""
    out = np.empty_like(points, dtype=np.float32)
    out[:, :2] = points[:, :2] @ matrix[:, :2].T + matrix[:, 2]
    out[:, 2] = points[:, 2] * float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    return out


def head_pose(points: np.ndarray) -> HeadPose:
    """Yaw, pitch, roll from a rigid fit of the canonical 3D mesh to the detected mesh.

    MediaPipe's z is in the same pixel scale as x, so an orthographic similarity fit (Umeyama)
    needs no camera intrinsics.
    """
    # Canonical: +x subject's left, +y up, +z towards camera. Image: +x right, +y down, +z away.
    # A frontal unmirrored face has the subject's left on the image right, so only y and z flip.
    src = canonical_face() * np.array([1.0, -1.0, -1.0])
    dst = points[:N_MESH].astype(np.float64)
    src_c, dst_c = src - src.mean(0), dst - dst.mean(0)
    u, _, vt = np.linalg.svd(dst_c.T @ src_c)
    d = np.sign(np.linalg.det(u @ vt))
    r = u @ np.diag([1.0, 1.0, d]) @ vt  # rotation: canonical(image axes) -> detected
    yaw = np.degrees(np.arcsin(np.clip(r[0, 2], -1.0, 1.0)))
    pitch = np.degrees(np.arctan2(-r[1, 2], r[2, 2]))
    roll = np.degrees(np.arctan2(-r[0, 1], r[0, 0]))
    # Express in the subject's frame: turning to their left moves the nose towards image right.
    return HeadPose(yaw=float(yaw), pitch=float(-pitch), roll=float(-roll))


def sharpness(gray: np.ndarray) -> float:
    """Variance of the Laplacian: low values mean a blurred face."""
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def align(points: np.ndarray, size: int = 224, n_faces: int = 1) -> Alignment:
    """Alignment, pose and geometric quality flags for one detected face."""
    matrix = similarity_matrix(points, size)
    pose = head_pose(points)
    interocular = float(np.linalg.norm(points[LEFT_IRIS, :2] - points[RIGHT_IRIS, :2]))
    flags = []
    if n_faces > 1:
        flags.append("multiple_faces")
    if abs(pose.yaw) > MAX_YAW_DEG:
        flags.append("large_yaw")
    if abs(pose.pitch) > MAX_PITCH_DEG:
        flags.append("large_pitch")
    if interocular < MIN_INTEROCULAR_PX:
        flags.append("small_face")
    return Alignment(
        matrix=matrix,
        size=size,
        points=transform_points(points, matrix),
        pose=pose,
        interocular_px=interocular,
        flags=tuple(flags),
    )


def warp(rgb: np.ndarray, alignment: Alignment) -> np.ndarray:
    """The aligned face crop (size x size RGB)."""
    return cv2.warpAffine(
        rgb, alignment.matrix, (alignment.size, alignment.size),
        flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE,
    )


def normalised_coordinates(alignment: Alignment) -> np.ndarray:
    """The landmark-coordinates modality: (478, 3) float32.

    Aligned landmarks with the eye midpoint at the origin and the interocular distance as the
    unit: x towards the image right (the subject's left in an unmirrored frame), y down, z away
    from the camera. Rows follow MediaPipe's landmark order (see ``topology``).
    """
    size = alignment.size
    origin = np.array([_centre_x(size), EYE_Y * size, 0.0], dtype=np.float32)
    return ((alignment.points - origin) / (INTEROCULAR * size)).astype(np.float32)
