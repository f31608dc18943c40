"""Extraction with an on-disk cache keyed by file content and extraction settings.

Modalities are computed once per file: the cache entry is named by the SHA-256 of the file's bytes
and ``Settings.key()``, so renaming or moving a file still hits the cache, and changing any
setting (or the extraction code version) never reuses stale values.
"""

from __future__ import annotations

import hashlib
import logging
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from palsy_core.extraction.pipeline import MediaAnalysis, Settings, analyse_media
from palsy_core.face.landmarks import make_detector
from palsy_core.io.manifest import ManifestRow
from palsy_core.io.media import MediaError, media_kind
from palsy_core.io.samples import cache_root

log = logging.getLogger(__name__)


def frame_cap_reached(analysis: MediaAnalysis, settings: Settings) -> bool:
    """Whether a video's analysis stopped at ``settings.max_frames`` (later frames unread)."""
    return analysis.kind == "video" and 0 < settings.max_frames <= analysis.n_frames


def default_cache_dir() -> Path:
    return cache_root() / "extracted"


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_path(cache_dir: Path, digest: str, settings: Settings) -> Path:
    return cache_dir / digest[:2] / f"{digest}-{settings.key()}.npz"


def extract_file(
    path: Path, settings: Settings, cache_dir: Path, detector=None
) -> tuple[MediaAnalysis, bool]:
    """The file's modalities and whether they came from the cache (name refreshed from ``path``)."""
    try:
        digest = file_digest(path)
    except OSError as exc:
        raise MediaError(f"{path.name}: cannot read the file ({exc.strerror or exc})") from exc
    target = cache_path(cache_dir, digest, settings)
    if target.exists():
        try:
            result = MediaAnalysis.load(target)
        except (OSError, EOFError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
            log.warning("%s: unreadable cache entry %s (%s); extracting again", path, target, exc)
        else:
            result.name = str(path)
            return result, True
    result = analyse_media(path, str(path), settings, detector=detector)
    result.save(target)
    return result, False


@dataclass
class ExtractionReport:
    results: dict[Path, MediaAnalysis] = field(default_factory=dict)
    errors: dict[Path, str] = field(default_factory=dict)
    cache_hits: int = 0


def extract_paths(
    paths: Iterable[Path],
    settings: Settings,
    cache_dir: Path | None = None,
    progress: bool = True,
) -> ExtractionReport:
    """Every file's analysis in memory (training needs them all); a file that cannot be read is
    reported and the rest continue. Batches that need only a summary per file run ``ExtractJob``
    through ``palsy_core.engine`` instead."""
    job = ExtractJob(settings, cache_dir)
    job.setup()
    report = ExtractionReport()
    try:
        for path in tqdm(list(paths), desc="extract", unit="file", disable=not progress):
            try:
                result, hit = job.analysis(path)
            except (MediaError, OSError) as exc:
                report.errors[path] = str(exc)
                continue
            report.results[path] = result
            report.cache_hits += hit
    finally:
        job.close()
    return report


class ExtractJob:
    """Per-file extraction for the batch engines: the modalities go to the cache, a summary comes
    back (the driver never holds the frames). One photo detector per worker, set up once."""

    def __init__(self, settings: Settings, cache_dir: Path | None = None) -> None:
        self.settings = settings
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self._detector = None

    def __repr__(self) -> str:
        return f"ExtractJob(cache={self.cache_dir})"

    def setup(self) -> None:
        if self._detector is None:
            self._detector = make_detector(self.settings.task_model, tracking=False)

    def analysis(self, path: Path) -> tuple[MediaAnalysis, bool]:
        """The file's modalities (through the cache) and whether they were cached; an unreadable
        file raises ``MediaError`` or ``OSError``."""
        media_kind(path)
        return extract_file(Path(path), self.settings, self.cache_dir, self._detector)

    def __call__(self, path: Path) -> dict:
        try:
            result, hit = self.analysis(path)
        except (MediaError, OSError) as exc:
            return {"error": str(exc)}
        return {"frames": result.n_frames, "face_frames": int(result.has_face.sum()),
                "flags": sorted({f for fl in result.flags for f in fl}),
                "frame_cap_reached": frame_cap_reached(result, self.settings),
                "cache_hit": bool(hit), "error": ""}

    def close(self) -> None:
        if self._detector is not None:
            self._detector.close()
            self._detector = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_detector": None}  # a detector never travels to a worker


def extract_manifest(
    rows: list[ManifestRow], settings: Settings, cache_dir: Path | None = None,
    progress: bool = True,
) -> ExtractionReport:
    return extract_paths([r.path for r in rows], settings, cache_dir, progress)
