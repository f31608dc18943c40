"""Unpacking an uploaded zip (a manifest plus its media) without trusting it.

An upload comes from a browser, so every member is checked before anything is written: no
absolute paths, no ``..`` components, no links or special files, no encrypted members, no
duplicate names, and caps on the member count and the unpacked size (zip bombs). Files go into a
private temporary directory (mode 0700) that is deleted when the ``with`` block ends, and
``rows_outside`` refuses manifest rows pointing outside it, so an upload reads only its own files.
"""

from __future__ import annotations

import shutil
import stat
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import BinaryIO

from palsy_core.io.manifest import ManifestRow

MAX_MEMBERS = 10_000
MAX_BYTES = 4 << 30  # unpacked; the upload itself is capped by .streamlit/config.toml
IGNORED_DIRS = ("__MACOSX",)  # resource forks added by macOS's "Compress"
MANIFEST_NAME = "manifest.csv"


class BundleError(ValueError):
    """An uploaded zip that cannot be used safely; the message names each bad member and why."""


@dataclass(frozen=True)
class Bundle:
    root: Path  # the private directory holding the unpacked files
    manifest: Path  # the manifest CSV inside ``root``


def _member_problem(info: zipfile.ZipInfo) -> str | None:
    name = info.filename.replace("\\", "/")
    if name.startswith("/") or PureWindowsPath(info.filename).drive:
        return "absolute path"
    if ".." in name.split("/"):
        return "'..' in the path (would escape the folder)"
    kind = stat.S_IFMT(info.external_attr >> 16)  # 0 when the zip records no Unix file type
    if kind == stat.S_IFLNK:
        return "symbolic link"
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        return "not a regular file"
    if info.flag_bits & 0x1:
        return "encrypted"
    return None


def check_members(
    zf: zipfile.ZipFile, max_members: int = MAX_MEMBERS, max_bytes: int = MAX_BYTES
) -> list[zipfile.ZipInfo]:
    """The zip's files to unpack (directories and macOS resource forks dropped).

    Raises BundleError listing every unsafe member, or when the caps are exceeded.
    """
    infos = zf.infolist()
    if len(infos) > max_members:
        raise BundleError(f"the zip has {len(infos)} members; at most {max_members} are accepted")
    problems, seen = [], set()
    for info in infos:
        why = _member_problem(info)
        key = info.filename.replace("\\", "/").rstrip("/").casefold()
        if why is None and key in seen:
            why = "duplicate name"
        seen.add(key)
        if why:
            problems.append(f"  {info.filename}: {why}")
    if problems:
        raise BundleError(f"refused an unsafe zip ({len(problems)} bad member(s)):\n"
                          + "\n".join(problems))
    total = sum(i.file_size for i in infos)
    if total > max_bytes:
        raise BundleError(f"the zip unpacks to {total:,} bytes; at most {max_bytes:,} are "
                          "accepted")
    return [i for i in infos if not i.is_dir()
            and PurePosixPath(i.filename.replace("\\", "/")).parts[0] not in IGNORED_DIRS]


def find_manifest(names: Sequence[PurePosixPath]) -> PurePosixPath:
    """The manifest among the zip's file names: its only CSV, else the shallowest manifest.csv."""
    csvs = [n for n in names if n.suffix.lower() == ".csv"]
    if len(csvs) == 1:
        return csvs[0]
    if not csvs:
        raise BundleError(f"no manifest in the zip: add a {MANIFEST_NAME} (columns "
                          "path,label,subject[,side,source], paths relative to it)")
    named = sorted((n for n in csvs if n.name.lower() == MANIFEST_NAME), key=lambda n: len(n.parts))
    if len(named) == 1 or (len(named) > 1 and len(named[0].parts) < len(named[1].parts)):
        return named[0]
    raise BundleError(f"cannot tell which CSV is the manifest ({', '.join(map(str, csvs))}); "
                      f"name it {MANIFEST_NAME} or leave only one CSV at the top")


@contextmanager
def unpacked_bundle(
    source: str | Path | BinaryIO, max_members: int = MAX_MEMBERS, max_bytes: int = MAX_BYTES
) -> Iterator[Bundle]:
    """Check and unpack a zip into a private temporary directory, deleted on exit."""
    try:
        zf = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BundleError(f"not a readable zip file: {exc}") from exc
    root = Path(tempfile.mkdtemp(prefix="palsy-bundle-")).resolve()
    try:
        with zf:
            members = check_members(zf, max_members, max_bytes)
            manifest = find_manifest([PurePosixPath(m.filename.replace("\\", "/"))
                                      for m in members])
            for info in members:
                target = root.joinpath(*PurePosixPath(info.filename.replace("\\", "/")).parts)
                try:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as src, open(target, "xb") as dst:
                        shutil.copyfileobj(src, dst)
                except (zipfile.BadZipFile, OSError) as exc:
                    raise BundleError(f"cannot unpack {info.filename}: {exc}") from exc
        yield Bundle(root, root.joinpath(*manifest.parts))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def rows_outside(rows: Sequence[ManifestRow], root: Path) -> dict[Path, str]:
    """Errors for manifest rows whose file lies outside the bundle (absolute or ``..`` paths)."""
    root = root.resolve()
    return {r.path: "outside the uploaded zip (absolute or '..' path)" for r in rows
            if not r.path.is_relative_to(root)}
