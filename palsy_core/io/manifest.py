"""Dataset manifests: one CSV row per photo or video.

Format: a header with the required columns ``path,label,subject`` and the optional columns
``side,source`` (others are ignored). ``path`` is relative to the manifest's folder; photo and
video rows may be mixed. ``label`` is ``palsy`` or ``healthy``; ``subject`` groups files of the
same person (splits never put one subject in both train and test); ``side`` is ``left``/``right``
(the subject's own side) or empty; ``source`` names the collection a file came from.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from palsy_core.io.media import PHOTO_EXTENSIONS, VIDEO_EXTENSIONS
from palsy_core.settings import SIDES

LABELS = ("healthy", "palsy")
REQUIRED_COLUMNS = ("path", "label", "subject")


class ManifestError(ValueError):
    """A manifest that cannot be used; the message names every bad row."""


@dataclass(frozen=True)
class ManifestRow:
    line: int  # line number in the CSV file (header is line 1)
    path: Path  # absolute
    rel: str  # as written in the manifest
    label: str
    subject: str
    side: str | None = None
    source: str = ""

    @property
    def y(self) -> int:
        return LABELS.index(self.label)


def read_manifest(path: str | Path, check_files: bool = True) -> list[ManifestRow]:
    """Parse and validate a manifest; raises ManifestError listing every problem at once."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except (OSError, ValueError) as exc:  # ValueError: a NUL character in the typed path
        raise ManifestError(f"cannot read manifest {path}: {getattr(exc, 'strerror', None) or exc}"
                            ) from exc
    if b"\x00" in raw:  # never in a text CSV; UTF-16 text (Excel's "Unicode Text") has many
        raise ManifestError(f"manifest {path} holds NUL bytes: it is UTF-16 text or not text at "
                            "all; save it as UTF-8 CSV")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ManifestError(
            f"manifest {path} is not UTF-8 text (byte {exc.start}: "
            f"{raw[exc.start:exc.start + 4]!r});"
            " save it as UTF-8 CSV"
        ) from exc
    if not text.strip():
        raise ManifestError(f"manifest {path} is empty")
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise ManifestError(
                f"manifest {path} lacks required column(s) {', '.join(missing)}; "
                f"the header must include {','.join(REQUIRED_COLUMNS)} (found: {','.join(header)})"
            )
        reader.fieldnames = header
        records = list(reader)
    except csv.Error as exc:
        raise ManifestError(f"manifest {path} is not valid CSV: {exc}") from exc

    base = path.parent
    rows: list[ManifestRow] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for i, rec in enumerate(records, start=2):
        rel = (rec.get("path") or "").strip()
        label = (rec.get("label") or "").strip().lower()
        subject = (rec.get("subject") or "").strip()
        side = (rec.get("side") or "").strip().lower() or None
        errs = []
        if not rel:
            errs.append("empty path")
        elif Path(rel).suffix.lower() not in PHOTO_EXTENSIONS | VIDEO_EXTENSIONS:
            errs.append(f"unsupported file type {Path(rel).suffix or '(none)'}")
        elif check_files and (why := _file_problem(base / rel)):
            errs.append(why)
        if label not in LABELS:
            errs.append(f"unknown label {label!r} (use {' or '.join(LABELS)})")
        if not subject:
            errs.append("empty subject")
        if side is not None and side not in SIDES:
            errs.append(f"unknown side {side!r} (use left, right or leave empty)")
        if rel and rel in seen:
            errs.append(f"duplicate of line {seen[rel]}")
        seen.setdefault(rel, i)
        if errs:
            problems.append(f"  line {i} ({rel or 'no path'}): {'; '.join(errs)}")
            continue
        rows.append(ManifestRow(line=i, path=(base / rel).resolve(), rel=rel, label=label,
                                subject=subject, side=side,
                                source=(rec.get("source") or "").strip()))
    if problems:
        raise ManifestError(
            f"manifest {path} has {len(problems)} bad row(s):\n" + "\n".join(problems)
        )
    if not rows:
        raise ManifestError(f"manifest {path} has a header but no rows")
    return rows


def _file_problem(path: Path) -> str | None:
    """Why ``path`` is not a readable file (None when it is one)."""
    try:
        return None if path.is_file() else "missing file"
    except OSError as exc:  # e.g. a name longer than the file system allows
        return f"unusable path ({exc.strerror or exc})"
