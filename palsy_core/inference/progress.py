"""Recovery over time: many dated photos or videos of one person, scored one by one.

Each file gets a date, from the first of these that has one:

1. a CSV the user gives (``name,date``: the file's name or path, an ISO date ``2022-01-16``);
2. the photo's EXIF ``DateTimeOriginal`` (else its ``DateTime``), or a video's container
   ``creation_time``;
3. the file name: ``2022_01_16``, ``2022-01-16``, ``2022.01.16`` or ``20220116`` anywhere in it.

Every file is screened as ``predict`` screens it (the fused P(palsy), verdict, affected side) and
its regional measurements are read from the same analysis: per side, the median over the
reliable face frames of brow height (brow), palpebral fissure height (eye) and commissure
excursion (mouth), in millimetres with the iris as the ruler, and their right-left difference.
These are measurements, not clinical grades. A file that cannot be read is reported with its
error and the rest continue.

``trend`` smooths P(palsy) over the dates (a Gaussian kernel in days) with a 95 % band, gives
Spearman's rho between date and P(palsy), and the first day from which the smoothed score stays
under the model's threshold.
"""

from __future__ import annotations

import csv
import io
import math
import re
import tempfile
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from contextlib import ExitStack
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np

from palsy_core.extraction.pipeline import Settings
from palsy_core.inference.exam import REGIONS as EXAM_REGIONS
from palsy_core.inference.exam import grade
from palsy_core.inference.scoring import LoadedModel, ScoredMedia
from palsy_core.inference.screen import Screener, ScreenJob
from palsy_core.io.bundle import BundleError, check_members
from palsy_core.io.media import PHOTO_EXTENSIONS, VIDEO_EXTENSIONS, MediaError
from palsy_core.metrics import deciding_frames
from palsy_core.registry import FRAME_FEATURES

# File-name dates: year, month, day with a separator, or eight digits, not inside a longer number.
NAME_PATTERNS = (re.compile(r"(?<!\d)(\d{4})[-_.](\d{2})[-_.](\d{2})(?!\d)"),
                 re.compile(r"(?<!\d)(\d{4})(\d{2})(\d{2})(?!\d)"))
EXIF_IFD, DATE_TIME_ORIGINAL, DATE_TIME = 0x8769, 36867, 306
# Region -> the Emotrics measure read for it (per side, millimetres).
REGIONS: dict[str, str] = {"brow": "brow_height", "eye": "palpebral_fissure_height",
                           "mouth": "commissure_excursion"}
BANDWIDTH_DAYS = 7.0
_COLUMN = {f.key: i for i, f in enumerate(FRAME_FEATURES)}


def _valid(y: int, m: int, d: int) -> date | None:
    try:
        day = date(y, m, d)
    except ValueError:
        return None
    return day if 1900 <= day.year <= 2100 else None


def date_from_name(name: str | Path) -> date | None:
    """The first plausible calendar date written in the file name (not its folders)."""
    stem = Path(name).name
    for pattern in NAME_PATTERNS:
        for m in pattern.finditer(stem):
            if day := _valid(*(int(g) for g in m.groups())):
                return day
    return None


def _parse_stamp(text: str) -> date | None:
    m = re.match(r"\s*(\d{4})[:\-](\d{2})[:\-](\d{2})", str(text))
    return _valid(*(int(g) for g in m.groups())) if m else None


def date_from_exif(source: Path | bytes) -> date | None:
    """A photo's EXIF DateTimeOriginal (else DateTime); None without EXIF or for a video."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
            exif = im.getexif()
    except (OSError, UnidentifiedImageError):
        return None
    stamp = exif.get_ifd(EXIF_IFD).get(DATE_TIME_ORIGINAL) or exif.get(DATE_TIME)
    return _parse_stamp(stamp) if stamp else None


def date_from_video(source: Path | bytes) -> date | None:
    """A video container's ``creation_time`` (phones write it), None when absent."""
    import av

    try:
        with av.open(io.BytesIO(source) if isinstance(source, bytes) else str(source)) as container:
            stamps = [container.metadata.get("creation_time")] + [
                s.metadata.get("creation_time") for s in container.streams]
    except (OSError, av.FFmpegError):
        return None
    return next((d for s in stamps if s and (d := _parse_stamp(s))), None)


def parse_dates(text: str, where: str = "the dates CSV") -> dict[str, date]:
    """``name,date`` rows (a header row is allowed): file name or path -> date."""
    out: dict[str, date] = {}
    for i, row in enumerate(csv.reader(io.StringIO(text)), 1):
        if len(row) < 2 or not row[0].strip():
            continue
        try:
            day = datetime.strptime(row[1].strip(), "%Y-%m-%d").date()
        except ValueError:
            if i == 1:
                continue  # the header
            raise ValueError(f"{where}, line {i}: {row[1]!r} is not a date like "
                             "2022-01-16") from None
        out[row[0].strip()] = day
    return out


def read_dates(csv_path: Path) -> dict[str, date]:
    """``parse_dates`` of a CSV file."""
    return parse_dates(Path(csv_path).read_text(encoding="utf-8-sig"), str(csv_path))


def file_date(path: str | Path, given: Mapping[str, date] | None = None,
              data: bytes | None = None) -> tuple[date | None, str]:
    """The file's date and where it came from (``dates CSV``, ``EXIF``, ``video metadata``,
    ``file name``), or ``(None, "")``; ``data``: the file's bytes (an upload), else read
    ``path``."""
    path = Path(path)
    if given:
        for key in (str(path), path.name):
            if key in given:
                return given[key], "dates CSV"
    suffix = path.suffix.lower()
    source = path if data is None else data
    if suffix in PHOTO_EXTENSIONS and (day := date_from_exif(source)):
        return day, "EXIF"
    if suffix in VIDEO_EXTENSIONS and (day := date_from_video(source)):
        return day, "video metadata"
    if day := date_from_name(path):
        return day, "file name"
    return None, ""


def regional_measures(features: np.ndarray, usable: np.ndarray) -> dict[str, dict[str, float]]:
    """Per region: right and left (median over the usable frames, mm) and their difference."""
    rows = features[usable]
    out = {}
    for region, key in REGIONS.items():
        r, l_ = (float(np.median(rows[:, _COLUMN[f"{key}_{s}"]])) for s in ("right", "left"))
        out[region] = {"right": round(r, 2), "left": round(l_, 2), "difference": round(r - l_, 2)}
    return out


class ProgressJob(ScreenJob):
    """``predict``'s job with the progress record: date, P(palsy), verdict, side, regions."""

    def __init__(self, model: LoadedModel | str | Path, settings: Settings | None = None,
                 dates: Mapping[str, date] | None = None) -> None:
        super().__init__(model, settings)
        self.dates = dict(dates or {})

    def __repr__(self) -> str:
        return "ProgressJob()"

    def __call__(self, path: str | Path) -> dict:
        return progress_record(self._screener, str(path), Path(path), self.dates)


def progress_record(screener: Screener, name: str, source: Path | bytes,
                    dates: Mapping[str, date] | None = None) -> dict:
    """One file's record: ``source`` is its path or, for an upload, its bytes (``name`` then
    gives its type and, maybe, its date)."""
    day, where = file_date(name, dates, source if isinstance(source, bytes) else None)
    record = {"path": name, "date": day.isoformat() if day else None, "date_source": where}
    try:
        result = screener.analyse(source, name)
    except (MediaError, OSError) as exc:
        return {**record, "error": str(exc)}
    a, scored = result.analysis, result.scored
    usable = deciding_frames(a.has_face, scored.frame_flags)
    return {**record, "p_palsy": _round(result.p), "verdict": result.verdict,
            "side": result.side, "reason": result.reason,
            "threshold": round(result.score().threshold, 4),
            "regions": regional_measures(a.features, usable) if usable.any() else None,
            "scores": resting_scores(scored, np.flatnonzero(usable)) if usable.any() else None,
            "error": ""}


def resting_scores(scored: ScoredMedia, frames: np.ndarray) -> dict[str, float | None]:
    """The guided exam's at-rest score (0-100, 100 symmetric) of each region on these frames:
    a photo or video of a face at rest, graded as the exam's resting segment."""
    exam = grade(scored, {"rest": frames})
    return {s.item.region: None if s.score is None else round(s.score, 1)
            for s in exam.items if s.item.kind == "static"}


CSV_COLUMNS = ("path", "date", "date_source", "p_palsy", "verdict", "side", "reason",
               *(f"{r}_{s}_mm" for r in REGIONS for s in ("right", "left", "difference")),
               *(f"{r}_rest_score" for r in EXAM_REGIONS), "error")


def records_csv(records: Iterable[dict]) -> str:
    """The records as CSV text, one row per file (the regions flattened into columns)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for rec in records:
        regions, scores = rec.get("regions") or {}, rec.get("scores") or {}
        w.writerow([rec["path"], rec["date"] or "", rec["date_source"], rec.get("p_palsy"),
                    rec.get("verdict", ""), rec.get("side") or "", rec.get("reason") or "",
                    *(regions.get(r, {}).get(s, "") for r in REGIONS
                      for s in ("right", "left", "difference")),
                    *(scores.get(r, "") for r in EXAM_REGIONS), rec.get("error", "")])
    return buf.getvalue()


def _round(p: float | None) -> float | None:
    return None if p is None or math.isnan(p) else round(float(p), 4)


def _smooth(t: np.ndarray, v: np.ndarray, bandwidth_days: float, low: float, high: float
            ) -> list[tuple[float, float, float | None, float | None]]:
    """(day, Gaussian-kernel mean, 95 % band low, high) at each distinct day ``t`` of the values
    ``v``; the band is the kernel-weighted standard error, clipped to [low, high]."""
    out = []
    for day in np.unique(t):
        w = np.exp(-0.5 * ((t - day) / bandwidth_days) ** 2)
        mean = float(np.sum(w * v) / np.sum(w))
        var = float(np.sum(w * (v - mean) ** 2) / np.sum(w))
        n_eff = float(np.sum(w) ** 2 / np.sum(w ** 2))
        half = 1.96 * math.sqrt(var / n_eff) if n_eff > 1 else float("nan")
        out.append((float(day), mean, _round(max(low, mean - half)),
                    _round(min(high, mean + half))))
    return out


def trend(records: Sequence[dict], bandwidth_days: float = BANDWIDTH_DAYS) -> dict:
    """The smoothed P(palsy) over the dated, scored records, its 95 % band, Spearman's rho
    (date, P), the first day from which the smoothed score stays under the threshold, and each
    region's smoothed at-rest score with its band (``regions``)."""
    from scipy.stats import spearmanr

    pts = sorted((date.fromisoformat(r["date"]), r["p_palsy"], r["threshold"]) for r in records
                 if not r.get("error") and r.get("date") and r.get("p_palsy") is not None)
    out: dict = {"n": len(pts), "spearman_rho": None, "points": [], "regions": {},
                 "first_day_under_threshold": None, "bandwidth_days": bandwidth_days}
    if not pts:
        return out
    start = pts[0][0]
    t = np.array([(d - start).days for d, _, _ in pts], dtype=float)
    p = np.array([q for _, q, _ in pts])
    threshold = float(np.median([thr for _, _, thr in pts]))
    if len(pts) >= 3 and np.ptp(t) > 0 and np.ptp(p) > 0:
        out["spearman_rho"] = round(float(spearmanr(t, p).statistic), 4)
    for day, mean, low, high in _smooth(t, p, bandwidth_days, 0.0, 1.0):
        when = (start + timedelta(days=int(day))).isoformat()
        out["points"].append({"date": when, "p_trend": round(mean, 4), "low": low, "high": high})
    below = [pt["p_trend"] < threshold for pt in out["points"]]
    for i in range(len(below)):
        if all(below[i:]):
            out["first_day_under_threshold"] = out["points"][i]["date"]
            break
    out["threshold"] = threshold
    for region in EXAM_REGIONS:
        rows = sorted((date.fromisoformat(r["date"]), r["scores"][region]) for r in records
                      if not r.get("error") and r.get("date") and r.get("scores")
                      and r["scores"].get(region) is not None)
        if not rows:
            continue
        days = np.array([(d - start).days for d, _ in rows], dtype=float)
        values = np.array([v for _, v in rows], dtype=float)
        out["regions"][region] = [
            {"date": (start + timedelta(days=int(day))).isoformat(), "score_trend": round(m, 2),
             "low": low, "high": high}
            for day, m, low, high in _smooth(days, values, bandwidth_days, 0.0, 100.0)]
    return out


def collect_media(inputs: Iterable[str | Path], stack: ExitStack) -> list[Path]:
    """Files as given, a folder's photos and videos (recursively, sorted), a zip's photos and
    videos (unpacked into a private temporary folder that ``stack`` deletes)."""
    media = PHOTO_EXTENSIONS | VIDEO_EXTENSIONS
    out: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            out += sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in media)
        elif item.suffix.lower() == ".zip" and item.is_file():
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="palsy-progress-")))
            try:
                with zipfile.ZipFile(item) as zf:
                    for info in check_members(zf):
                        if Path(info.filename).suffix.lower() in media:
                            out.append(Path(zf.extract(info, root)))
            except (zipfile.BadZipFile, BundleError) as exc:
                raise ValueError(f"{item}: {exc}") from exc
        else:
            out.append(item)  # a missing or unreadable file is reported by its record
    return out
