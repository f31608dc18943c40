"""The single registry of modalities and expression features.

The model, the CLI, reports and the dashboard all read names, units and descriptions from here. A
feature is added here alone; a modality is its entry here (name and description for people) plus
one file in ``palsy_core/modalities/`` with its ``SPEC`` (how it is computed, mirrored and fed to
the network).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Modality:
    key: str
    name: str
    kind: str  # "image" or "vector"
    description: str


@dataclass(frozen=True)
class Feature:
    key: str
    name: str
    unit: str
    group: str
    description: str


MODALITIES: tuple[Modality, ...] = (
    Modality("rgb", "RGB face", "image",
             "Aligned colour face crop (roll removed, fixed interocular distance); its branch "
             "reads the crop minus its mirror image."),
    Modality("lines", "Line segments", "image",
             "Contours of brows, eyes, nose, lips and face oval with bilateral construction lines "
             "and the facial midline, drawn on black in the aligned frame; its branch reads the "
             "image minus its mirror image."),
    Modality("landmarks", "Landmark coordinates", "vector",
             "478 aligned MediaPipe landmarks (x, y, z), centred on the eye midpoint and divided "
             "by the interocular distance; its branch reads each point minus its mirror twin "
             "reflected across the midline."),
    Modality("features", "Expression features", "vector",
             "Parra-Dominguez key-point asymmetry features and Emotrics-style bilateral "
             "measurements in millimetres."),
    Modality("face_asym", "Face-network asymmetry", "vector",
             "Activations of MediaPipe's face-trained landmark network (frozen) for the aligned "
             "face minus those for its mirror image: exactly zero for a symmetric face, so "
             "identity, lighting and photo style cancel and asymmetry remains."),
    Modality("blendshapes", "Blendshape asymmetry", "vector",
             "MediaPipe's expression network (52 blendshapes with left and right scores, from "
             "face_landmarker.task) run on the face and on its mirror image: each left/right "
             "pair's asymmetry with both passes' side bias cancelled, its excursion ratio and "
             "how strongly the pair moves."),
)

MODALITY_KEYS: tuple[str, ...] = tuple(m.key for m in MODALITIES)
# What a model is built with unless told otherwise: every modality.
DEFAULT_MODALITIES: tuple[str, ...] = MODALITY_KEYS


def modality(key: str) -> Modality:
    """Look up a modality by key, with a clear error listing the valid keys."""
    for m in MODALITIES:
        if m.key == key:
            return m
    raise KeyError(f"unknown modality {key!r}; choose from {', '.join(MODALITY_KEYS)}")


# --- Expression features -------------------------------------------------------------------------
# Computed by palsy_core.modalities.features, in exactly this order. Side names are the subject's
# own; "higher" and "vertical" refer to the face's own axes (perpendicular to the interpupillary
# line). Landmark numbers: dlib-68 as in Parra-Dominguez et al. 2021, MediaPipe as mapped in
# palsy_core.modalities.features.

_PD = "parra_dominguez"
_PD_TILT = ("Signed angle of the line joining {what} to the interpupillary line, positive when the "
            "subject's left end is higher.")
_PD_SLOPE = ("Signed slope (rise over run) of the line joining {what}, positive when the "
             "subject's left end is higher.")
_PD_RATIO = "Symmetry ratio max(a/b, b/a) of {what}, 1 for a symmetric face."
_BROW_OUTER = "the outer brow ends (dlib 17-26, MediaPipe 70-300)"
_BROW_MIDDLE = "the mid-brow points (dlib 19-24, MediaPipe 105-334)"
_BROW_INNER = "the inner brow ends (dlib 21-22, MediaPipe 107-336)"

PARRA_DOMINGUEZ_FEATURES: tuple[Feature, ...] = (
    # Eyebrows
    Feature("pd_brow_outer_tilt", "Brow outer-end tilt", "deg", _PD,
            _PD_TILT.format(what=_BROW_OUTER)),
    Feature("pd_brow_middle_tilt", "Brow middle tilt", "deg", _PD,
            _PD_TILT.format(what=_BROW_MIDDLE)),
    Feature("pd_brow_inner_tilt", "Brow inner-end tilt", "deg", _PD,
            _PD_TILT.format(what=_BROW_INNER)),
    Feature("pd_brow_height_ratio", "Brow height ratio", "ratio", _PD, _PD_RATIO.format(
        what="the mean heights above the interpupillary line of the five brow points per side "
             "(dlib 17-21 vs 22-26, MediaPipe 70-63-105-66-107 vs 300-293-334-296-336)")),
    Feature("pd_brow_outer_slope", "Brow outer-end slope", "ratio", _PD,
            _PD_SLOPE.format(what=_BROW_OUTER)),
    Feature("pd_brow_middle_slope", "Brow middle slope", "ratio", _PD,
            _PD_SLOPE.format(what=_BROW_MIDDLE)),
    Feature("pd_brow_inner_slope", "Brow inner-end slope", "ratio", _PD,
            _PD_SLOPE.format(what=_BROW_INNER)),
    # Eyes
    Feature("pd_eye_corner_tilt", "Outer eye-corner tilt", "deg", _PD,
            _PD_TILT.format(what="the outer eye corners (dlib 36-45, MediaPipe 33-263)")),
    Feature("pd_eye_width_ratio", "Eye width ratio", "ratio", _PD, _PD_RATIO.format(
        what="the horizontal corner-to-corner eye widths (dlib 36-39 vs 42-45, MediaPipe 33-133 "
             "vs 362-263)")),
    Feature("pd_eye_face_edge_ratio", "Eye to face-edge ratio", "ratio", _PD, _PD_RATIO.format(
        what="the horizontal distances from each outer eye corner to the face contour on its side "
             "(dlib 36-0 vs 45-16, MediaPipe 33-127 vs 263-356)")),
    Feature("pd_eye_nostril_ratio", "Eye to nostril ratio", "ratio", _PD, _PD_RATIO.format(
        what="the distances from each outer eye corner to the alar base on its side (dlib 36-31 "
             "vs 45-35, MediaPipe 33-98 vs 263-327)")),
    Feature("pd_eye_opening_ratio", "Eye opening ratio", "ratio", _PD, _PD_RATIO.format(
        what="the mean vertical lid gaps of each eye (dlib 37-41 and 38-40 vs 44-46 and 43-47, "
             "MediaPipe 160-144 and 158-153 vs 387-373 and 385-380)")),
    Feature("pd_eye_lateral_opening_ratio", "Lateral eye opening ratio", "ratio", _PD,
            _PD_RATIO.format(what="the lateral vertical lid gaps (dlib 37-41 vs 44-46, MediaPipe "
                                  "160-144 vs 387-373)")),
    Feature("pd_eye_medial_opening_ratio", "Medial eye opening ratio", "ratio", _PD,
            _PD_RATIO.format(what="the medial vertical lid gaps (dlib 38-40 vs 43-47, MediaPipe "
                                  "158-153 vs 385-380)")),
    # Mouth
    Feature("pd_mouth_corner_tilt", "Mouth-corner tilt", "deg", _PD,
            _PD_TILT.format(what="the mouth corners (dlib 48-54, MediaPipe 61-291)")),
    Feature("pd_eye_lip_ratio", "Eye to lower-lip ratio", "ratio", _PD, _PD_RATIO.format(
        what="the distances from each outer eye corner to the lower-lip midpoint (dlib 36-57 vs "
             "45-57, MediaPipe 33-17 vs 263-17)")),
    Feature("pd_lip_lateral_height_ratio", "Lateral lip height ratio", "ratio", _PD,
            _PD_RATIO.format(what="the vertical lip heights at the lateral vermilion points (dlib "
                                  "49-59 vs 53-55, MediaPipe 40-91 vs 270-321)")),
    Feature("pd_lip_paramedian_height_ratio", "Paramedian lip height ratio", "ratio", _PD,
            _PD_RATIO.format(what="the vertical lip heights at the Cupid's-bow peaks (dlib 50-58 "
                                  "vs 52-56, MediaPipe 37-84 vs 267-314)")),
    Feature("pd_commissure_lip_max", "Corner to lower-lip distance", "ratio", _PD,
            "Larger of the two distances from a mouth corner to the lower-lip midpoint (dlib "
            "48-57, 54-57; MediaPipe 61-17, 291-17) divided by the horizontal face width (dlib "
            "0-16, MediaPipe 127-356)."),
    Feature("pd_lip_lateral_height_max", "Lateral lip height", "ratio", _PD,
            "Larger of the two lateral vertical lip heights (dlib 49-59, 53-55) divided by the "
            "horizontal mouth width (dlib 48-54, MediaPipe 61-291)."),
    Feature("pd_lip_paramedian_height_max", "Paramedian lip height", "ratio", _PD,
            "Larger of the two Cupid's-bow vertical lip heights (dlib 50-58, 52-56) divided by the "
            "horizontal mouth width."),
    Feature("pd_half_mouth_perimeter_max", "Half-mouth outline", "ratio", _PD,
            "Larger perimeter of the two closed half-mouth outlines (dlib 48-49-50-51-57-58-59 and "
            "its mirror 54-53-52-51-57-56-55) divided by the horizontal mouth width."),
    # Nose
    Feature("pd_nostril_tilt", "Nostril tilt", "deg", _PD,
            _PD_TILT.format(what="the alar bases (dlib 31-35, MediaPipe 98-327)")),
    # Combined
    Feature("pd_nose_lip_axis_angle", "Nose-lip axis angle", "deg", _PD,
            "Signed angle between the facial vertical and the line from the nose tip to the "
            "lower-lip midpoint (dlib 30-57, MediaPipe 1-17), positive when the lip lies towards "
            "the subject's left."),
    Feature("pd_nostril_lip_ratio", "Nostril to lower-lip ratio", "ratio", _PD, _PD_RATIO.format(
        what="the distances from each alar base to the lower-lip midpoint (dlib 31-57 vs 35-57, "
             "MediaPipe 98-17 vs 327-17)")),
    Feature("pd_brow_middle_lip_max", "Mid-brow to lower-lip distance", "ratio", _PD,
            "Larger of the two distances from a mid-brow point to the lower-lip midpoint (dlib "
            "19-57, 24-57; MediaPipe 105-17, 334-17) divided by the horizontal face width."),
    Feature("pd_brow_medial_lip_max", "Medial brow to lower-lip distance", "ratio", _PD,
            "Larger of the two distances from a medial brow point to the lower-lip midpoint (dlib "
            "20-57, 23-57; MediaPipe 66-17, 296-17) divided by the horizontal face width."),
    Feature("pd_lip_chin_length", "Lower lip to chin", "ratio", _PD,
            "Distance from the lower-lip midpoint to the chin (dlib 57-8, MediaPipe 17-152) "
            "divided by the horizontal face width."),
    Feature("pd_philtrum_length", "Philtrum length", "ratio", _PD,
            "Distance from the subnasale to the upper-lip midpoint (dlib 33-51, MediaPipe 2-0) "
            "divided by the horizontal face width."),
)


def _bilateral(key: str, name: str, unit: str, group: str, what: str) -> tuple[Feature, ...]:
    """A per-side measurement as right, left and absolute difference.

    No percentage difference: dividing by the smaller measures (MRD1, MRD2, dental show: a few mm)
    turned a landmark detector's 0.5 mm mirror inconsistency into 20-30 points, so a face and its
    mirror photo disagreed; the millimetre difference carries the same information stably.

    ``what`` defines the measurement on the subject's right side; the left side uses the mirror
    twins of the same landmarks (``topology.mirror_index``).
    """
    return (
        Feature(f"{key}_right", f"{name} (right)", unit, group,
                f"{what}, on the subject's right side."),
        Feature(f"{key}_left", f"{name} (left)", unit, group,
                f"{what}, on the subject's left side (mirror-twin landmarks)."),
        Feature(f"{key}_absdiff", f"{name} asymmetry", unit, group,
                f"Absolute difference between the right and left {name.lower()}."),
    )


_MM = ("in millimetres with the iris diameter (11.7 mm, from iris ring points 469-472 and 474-477) "
       "as the ruler")
# (key, name, unit, definition on the subject's right side; the left uses the mirrored landmarks).
EMOTRICS_MEASURES: tuple[tuple[str, str, str, str], ...] = (
    ("brow_height", "Brow height", "mm",
     "Distance from the iris centre (468) up to the upper brow border (70-63-105-66-107), along "
     f"the facial vertical through the iris centre, {_MM}"),
    ("palpebral_fissure_height", "Palpebral fissure height", "mm",
     "Distance from the upper lid margin (33-246-161-160-159-158-157-173-133) down to the lower "
     "lid margin (33-7-163-144-145-153-154-155-133) along the facial vertical halfway between "
     f"the eye corners (33, 133), 0 when the lids touch, {_MM}"),
    ("mrd1", "Marginal reflex distance 1", "mm",
     "Distance from the iris centre (468) up to the upper lid margin along the facial vertical "
     f"through the iris centre, negative when the lid covers the centre, {_MM}"),
    ("mrd2", "Marginal reflex distance 2", "mm",
     "Distance from the iris centre (468) down to the lower lid margin along the facial vertical "
     f"through the iris centre, {_MM}"),
    ("commissure_excursion", "Commissure excursion", "mm",
     "Distance from the mouth corner (61) to the lower-lip midline point, where the outer "
     "lower-lip border (61-146-91-181-84-17 and mirror) crosses the facial midline "
     f"(perpendicular bisector of the interpupillary line), {_MM}"),
    ("smile_angle", "Smile angle", "deg",
     "Angle at the lower-lip midline point between the downward facial vertical and the line to "
     "the mouth corner (61), 90 degrees when the corner is level with that point and larger when "
     "it is raised"),
    ("upper_lip_height", "Upper lip level below the eye line", "mm",
     "How far the outer upper-lip border (61-185-40-39-37-0) lies below the interpupillary line, "
     "halfway between the facial midline and the mouth corner (a level, not the lip's thickness: "
     "about 60 mm on an adult face; its right-left difference is Emotrics' upper lip height "
     f"deviation, a lip drawn down on one side), {_MM}"),
    ("lower_lip_height", "Lower lip level below the eye line", "mm",
     "How far the outer lower-lip border (61-146-91-181-84-17) lies below the interpupillary "
     "line, halfway between the facial midline and the mouth corner (a level, not the lip's "
     "thickness: about 75 mm on an adult face; its right-left difference is Emotrics' lower lip "
     f"height deviation), {_MM}"),
    ("dental_show", "Dental show (proxy)", "mm",
     "Landmark-only proxy for dental show (teeth are not detected): the gap between the inner "
     "upper lip (78-191-80-81-82-13) and inner lower lip (78-95-88-178-87-14) halfway between the "
     f"facial midline and the mouth corner, 0 when the lips touch, {_MM}"),
)
EMOTRICS_FEATURES: tuple[Feature, ...] = tuple(
    f
    for key, name, unit, what in EMOTRICS_MEASURES
    for f in _bilateral(key, name, unit, "emotrics", what)
)

# Movement measures whose per-side range over a video is a clip-level feature.
_ROM_MEASURES = ("brow_height", "palpebral_fissure_height", "commissure_excursion", "smile_angle",
                 "dental_show")
CLIP_FEATURES: tuple[Feature, ...] = tuple(
    f
    for key, name, unit, _ in EMOTRICS_MEASURES
    if key in _ROM_MEASURES
    for f in _bilateral(
        f"{key}_rom", f"{name} range of motion", unit, "range_of_motion",
        f"Robust range over a video (95th minus 5th percentile over the frames with a face) of the "
        f"per-frame {name.lower()}",
    )
)

FRAME_FEATURES: tuple[Feature, ...] = PARRA_DOMINGUEZ_FEATURES + EMOTRICS_FEATURES
FEATURES: tuple[Feature, ...] = FRAME_FEATURES + CLIP_FEATURES
