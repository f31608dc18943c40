"""Manifest validation names every bad row in one error."""

from __future__ import annotations

import shutil

import pytest

from palsy_core.io.manifest import ManifestError, read_manifest


def _write(tmp_path, text: str, encoding: str = "utf-8"):
    path = tmp_path / "manifest.csv"
    path.write_bytes(text.encode(encoding))
    return path


def test_valid_manifest_mixes_photos_and_videos(tmp_path, pyfeat_dir):
    (tmp_path / "media").mkdir()
    shutil.copy(pyfeat_dir / "single_face.jpg", tmp_path / "media" / "a.jpg")
    shutil.copy(pyfeat_dir / "single_face.mp4", tmp_path / "media" / "b.mp4")
    path = _write(tmp_path, "path,label,subject,side,source\n"
                            "media/a.jpg,healthy,s1,,web\nmedia/b.mp4,Palsy,s2,left,clinic\n")
    rows = read_manifest(path)
    assert [r.label for r in rows] == ["healthy", "palsy"]
    assert rows[1].side == "left" and rows[1].source == "clinic" and rows[1].y == 1
    assert rows[0].path == (tmp_path / "media" / "a.jpg").resolve()


def test_every_bad_row_is_named(tmp_path, pyfeat_dir):
    shutil.copy(pyfeat_dir / "single_face.jpg", tmp_path / "ok.jpg")
    path = _write(tmp_path, "path,label,subject,side\n"
                            "ok.jpg,healthy,s1,\n"
                            "gone.jpg,healthy,s2,\n"
                            "ok.jpg,sick,s3,\n"
                            "ok.jpg,palsy,,\n"
                            "notes.txt,palsy,s4,\n"
                            "ok.jpg,palsy,s5,up\n")
    with pytest.raises(ManifestError) as err:
        read_manifest(path)
    msg = str(err.value)
    assert "5 bad row(s)" in msg
    assert "line 3 (gone.jpg): missing file" in msg
    assert "line 4 (ok.jpg): unknown label 'sick'" in msg
    assert "line 5 (ok.jpg): empty subject" in msg
    assert "line 6 (notes.txt): unsupported file type .txt" in msg
    assert "unknown side 'up'" in msg and "duplicate of line 2" in msg


def test_missing_columns_and_encoding(tmp_path):
    with pytest.raises(ManifestError, match="lacks required column"):
        read_manifest(_write(tmp_path, "file,label\nx.jpg,palsy\n"))
    with pytest.raises(ManifestError, match="not UTF-8"):
        read_manifest(_write(tmp_path, "path,label,subject\nçé.jpg,palsy,s\n", "latin-1"))
    with pytest.raises(ManifestError, match="empty"):
        read_manifest(_write(tmp_path, ""))
    with pytest.raises(ManifestError, match="cannot read"):
        read_manifest(tmp_path / "nope.csv")
