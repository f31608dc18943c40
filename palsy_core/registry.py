"""The single registry of modalities and expression features.

The model, the CLI, reports and the dashboard all read names, units and descriptions from here, so
a modality or feature is added in exactly one place.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Modality:
    key: str
    name: str
    kind: str  # "image" or "vector"
    description: str
    optional: bool = False  # present only with some detector backends


@dataclass(frozen=True)
class Feature:
    key: str
    name: str
    unit: str
    group: str
    description: str


MODALITIES: tuple[Modality, ...] = (
    Modality("rgb", "RGB face", "image",
             "Aligned colour face crop (roll removed, fixed interocular distance)."),
    Modality("lines", "Line segments", "image",
             "Contours of brows, eyes, nose, lips and face oval with bilateral construction lines "
             "and the facial midline, drawn on black in the aligned frame."),
    Modality("landmarks", "Landmark coordinates", "vector",
             "478 aligned MediaPipe landmarks (x, y, z), centred on the eye midpoint and divided "
             "by the interocular distance."),
    Modality("features", "Expression features", "vector",
             "Parra-Dominguez key-point asymmetry features and Emotrics-style bilateral "
             "measurements in millimetres."),
    Modality("blendshapes", "Blendshapes", "vector",
             "52 expression blendshape scores from the MediaPipe Tasks FaceLandmarker.",
             optional=True),
)

MODALITY_KEYS: tuple[str, ...] = tuple(m.key for m in MODALITIES)


def modality(key: str) -> Modality:
    """Look up a modality by key, with a clear error listing the valid keys."""
    for m in MODALITIES:
        if m.key == key:
            return m
    raise KeyError(f"unknown modality {key!r}; choose from {', '.join(MODALITY_KEYS)}")


# --- Expression features (filled in by palsy_core.features' declarations) ---------------------
FEATURES: tuple[Feature, ...] = ()
