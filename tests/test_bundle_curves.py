"""Uploaded zips are unpacked only when safe; ROC/PR curves agree with independent definitions."""

from __future__ import annotations

import io
import stat
import tempfile
import zipfile

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, roc_auc_score

from palsy_core.evaluation.curves import curves_for, variant_curves
from palsy_core.io.bundle import BundleError, rows_outside, unpacked_bundle
from palsy_core.io.manifest import read_manifest
from palsy_core.metrics import binary_metrics

MANIFEST = "path,label,subject,source\nfaces/a.jpg,healthy,s1,pyfeat\nfaces/b.jpg,palsy,s2,pyfeat\n"


def _zip(members: dict[str, bytes], special: dict[str, int] | None = None) -> io.BytesIO:
    """A zip of ``members``; ``special`` adds members with a Unix file type (link, fifo...)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name, kind in (special or {}).items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = (kind | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    buf.seek(0)
    return buf


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """Redirect temporary directories so the tests can see what is left behind."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


@pytest.fixture(scope="module")
def faces(pyfeat_dir) -> dict[str, bytes]:
    return {"faces/a.jpg": (pyfeat_dir / "single_face.jpg").read_bytes(),
            "faces/b.jpg": (pyfeat_dir / "0-f1-su-ph.jpg").read_bytes()}


def test_good_zip_is_unpacked_privately_and_deleted(private_tmp, faces, pyfeat_dir):
    data = _zip({"study/manifest.csv": MANIFEST.encode(),
                 **{f"study/{k}": v for k, v in faces.items()},
                 "__MACOSX/study/._manifest.csv": b"resource fork", "study/empty/": b""})
    with unpacked_bundle(data) as bundle:
        assert bundle.manifest == bundle.root / "study" / "manifest.csv"
        assert stat.S_IMODE(bundle.root.stat().st_mode) == 0o700
        assert not (bundle.root / "__MACOSX").exists()
        rows = read_manifest(bundle.manifest)  # every listed file is there
        assert [r.path.read_bytes() for r in rows] == list(faces.values())
        assert rows_outside(rows, bundle.root) == {}
    assert list(private_tmp.iterdir()) == []


@pytest.mark.parametrize(("member", "why"), [
    ("../evil.jpg", "'..' in the path"),
    ("faces/../../evil.jpg", "'..' in the path"),
    ("/etc/evil.jpg", "absolute path"),
    ("C:/evil.jpg", "absolute path"),
    ("faces\\..\\..\\evil.jpg", "'..' in the path"),
])
def test_escaping_members_are_refused(private_tmp, member, why):
    with pytest.raises(BundleError, match="unsafe zip") as err, unpacked_bundle(
            _zip({"manifest.csv": MANIFEST.encode(), member: b"x"})):
        pass
    assert f"{member}: {why}" in str(err.value)
    assert list(private_tmp.iterdir()) == []


def test_symlinks_duplicates_and_caps_are_refused(private_tmp, faces):
    special = {"faces/a.jpg": stat.S_IFLNK, "faces/b.jpg": stat.S_IFIFO}
    with pytest.raises(BundleError, match="2 bad member") as err, unpacked_bundle(
            _zip({"manifest.csv": MANIFEST.encode()}, special)):
        pass
    assert "faces/a.jpg: symbolic link" in str(err.value)
    assert "faces/b.jpg: not a regular file" in str(err.value)
    with pytest.raises(BundleError, match=r"FACES/A.JPG: duplicate name"), unpacked_bundle(
            _zip({"manifest.csv": b"x", "faces/a.jpg": b"1", "FACES/A.JPG": b"2"})):
        pass
    big = _zip({"manifest.csv": MANIFEST.encode(), **faces})
    with pytest.raises(BundleError, match="has 3 members; at most 2 are accepted"), \
            unpacked_bundle(big, max_members=2):
        pass
    big.seek(0)
    with pytest.raises(BundleError, match=r"unpacks to [\d,]+ bytes; at most 1,000 are"), \
            unpacked_bundle(big, max_bytes=1000):
        pass
    with pytest.raises(BundleError, match="not a readable zip"), unpacked_bundle(
            io.BytesIO(b"PK not really a zip")):
        pass
    assert list(private_tmp.iterdir()) == []


def test_manifest_must_be_identifiable(private_tmp):
    with pytest.raises(BundleError, match="no manifest in the zip"), unpacked_bundle(
            _zip({"a.jpg": b"x"})):
        pass
    with pytest.raises(BundleError, match="cannot tell which CSV"), unpacked_bundle(
            _zip({"labels.csv": b"x", "other.csv": b"y"})):
        pass
    with unpacked_bundle(_zip({"manifest.csv": b"x", "old/manifest.csv": b"y",
                               "notes.csv": b"z"})) as bundle:
        assert bundle.manifest == bundle.root / "manifest.csv"


def test_manifest_rows_may_not_leave_the_bundle(private_tmp, faces):
    text = MANIFEST + "../../outside.jpg,palsy,s3,\n/etc/hosts.jpg,healthy,s4,\n"
    with unpacked_bundle(_zip({"manifest.csv": text.encode(), **faces})) as bundle:
        rows = read_manifest(bundle.manifest, check_files=False)
        refused = rows_outside(rows, bundle.root)
    assert {p.name for p in refused} == {"outside.jpg", "hosts.jpg"}
    assert all("outside the uploaded zip" in why for why in refused.values())


def _mann_whitney_auc(y: np.ndarray, p: np.ndarray) -> float:
    pos, neg = p[y == 1][:, None], p[y == 0][None, :]
    return float(((pos > neg) + 0.5 * (pos == neg)).mean())


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 20)), min_size=2, max_size=60))
def test_curves_are_monotone_and_match_sklearn(pairs):
    y = np.array([int(a) for a, _ in pairs])
    p = np.array([b / 20 for _, b in pairs])  # coarse scores: many ties
    df = pd.DataFrame({"y": y, "p_fused": p, "thr_fused": 0.5})
    c = variant_curves(df, "fused")
    if len(set(y.tolist())) < 2:
        assert c is None
        return
    assert (np.diff(c.fpr) >= 0).all() and (np.diff(c.tpr) >= 0).all()
    assert (c.fpr[0], c.tpr[0], c.fpr[-1], c.tpr[-1]) == (0, 0, 1, 1)
    assert (np.diff(c.recall) >= 0).all() and c.recall[0] == 0 and c.recall[-1] == 1
    assert c.auroc == pytest.approx(roc_auc_score(y, p))
    assert c.auroc == pytest.approx(_mann_whitney_auc(y, p))
    assert c.average_precision == pytest.approx(average_precision_score(y, p))
    m = binary_metrics(y, p, 0.5)
    (tn, fp), _ = m["confusion"]
    assert (c.point_tpr, c.point_fpr) == pytest.approx((m["recall"], fp / (fp + tn)))
    assert c.point_precision == pytest.approx(m["precision"])


def test_curves_skip_unscored_files_and_use_each_files_threshold():
    df = pd.DataFrame({"y": [0, 0, 1, 1, 1], "p_rgb": [0.2, 0.6, 0.7, np.nan, 0.5],
                       "thr_rgb": [0.3, 0.7, 0.6, 0.5, 0.6]})  # per-fold thresholds
    c = variant_curves(df, "rgb")
    assert (c.n, c.n_palsy) == (4, 2)
    assert (c.point_fpr, c.point_tpr, c.point_precision) == (0.0, 0.5, 1.0)
    assert list(curves_for(df, ["fused", "rgb"])) == ["rgb"]  # no p_fused column
