"""Recovery over time (``python -m palsy_core progress``) on a real face with synthetic palsy of
known side and falling severity: dates from EXIF, video metadata, every file-name pattern and a
CSV; the trend falls with the date; a bad file is reported and the rest scored."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import date
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from palsy_core.cli import main
from palsy_core.engine import EngineOptions, LocalEngine
from palsy_core.extraction.pipeline import analyse_media
from palsy_core.face.synth import synthesize_palsy
from palsy_core.inference.demo import padded_face
from palsy_core.inference.progress import (
    ProgressJob,
    date_from_name,
    file_date,
    read_dates,
    trend,
)
from palsy_core.settings import DEFAULT_MODEL

# Severity falls over ten weeks, as in a recovery: week 0 severe, week 9 healthy.
SEVERITIES = (1.0, 0.9, 0.8, 0.65, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0)
NAMES = ("IMG_2022_01_03.png", "2022-01-10 selfie.png", "face.2022.01.17.png", "20220124_x.png",
         "2022_01_31.png", "PXL_20220207_101010.png", "2022-02-14.png", "2022_02_21.png",
         "20220228.png", "2022-03-07.png")


@pytest.fixture(scope="module")
def series(tmp_path_factory, pyfeat_dir) -> Path:
    """Ten photos of one real face, synthetic palsy of the subject's left falling with the date
    written in each file's name (every pattern), plus an unreadable file."""
    folder = tmp_path_factory.mktemp("series")
    rgb, points = padded_face(analyse_media(pyfeat_dir / "single_face.jpg", "single_face.jpg"), 0)
    for name, severity in zip(NAMES, SEVERITIES, strict=True):
        Image.fromarray(synthesize_palsy(rgb, points, "left", severity).rgb).save(folder / name)
    (folder / "2022_03_14.jpg").write_bytes(b"not a photo")
    return folder


def test_dates_from_file_names_exif_video_metadata_and_a_csv(tmp_path, pyfeat_dir):
    expected = [date(2022, 1, 3) + (date(2022, 1, 10) - date(2022, 1, 3)) * i
                for i in range(len(NAMES))]
    assert [date_from_name(n) for n in NAMES] == expected
    assert date_from_name("IMG_1234.png") is None and date_from_name("2022_13_45.png") is None
    assert date_from_name("/2022_01_16/face.png") is None  # a folder's name is not the file's

    photo = tmp_path / "IMG_1234.jpg"
    exif = Image.Exif()
    exif.get_ifd(0x8769)[36867] = "2021:11:05 09:30:00"  # DateTimeOriginal
    Image.open(pyfeat_dir / "single_face.jpg").save(photo, exif=exif)
    assert file_date(photo) == (date(2021, 11, 5), "EXIF")

    video = tmp_path / "clip.mp4"
    with av.open(str(video), "w") as out:
        out.metadata["creation_time"] = "2021-12-24T08:00:00.000000Z"
        stream = out.add_stream("mpeg4", rate=5)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for _ in range(3):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(
                np.zeros((64, 64, 3), np.uint8), format="rgb24")))
        out.mux(stream.encode(None))
    assert file_date(video) == (date(2021, 12, 24), "video metadata")

    dates_csv = tmp_path / "dates.csv"
    dates_csv.write_text("file,date\nIMG_1234.jpg,2020-02-02\nother.png,2020-03-03\n")
    given = read_dates(dates_csv)
    assert file_date(photo, given) == (date(2020, 2, 2), "dates CSV")  # the user's word first
    assert file_date(tmp_path / "nothing.png") == (None, "")
    dates_csv.write_text("file,date\nIMG_1234.jpg,16/01/2022\n")
    with pytest.raises(ValueError, match="not a date like 2022-01-16"):
        read_dates(dates_csv)


def test_a_recovery_series_falls_with_the_date(series):
    files = sorted(series.iterdir())
    with LocalEngine(EngineOptions(progress=False)) as engine:
        records = [r for _, r in engine.map(ProgressJob(DEFAULT_MODEL), files)]
    bad = [r for r in records if r["error"]]
    assert len(bad) == 1 and bad[0]["path"].endswith("2022_03_14.jpg")
    scored = sorted((r for r in records if not r["error"]), key=lambda r: r["date"])
    assert [r["date_source"] for r in scored] == ["file name"] * len(NAMES)
    p = np.array([r["p_palsy"] for r in scored])
    assert p[:3].mean() > p[-3:].mean() + 0.3, p  # severe weeks far above the healed ones
    # The affected side is right wherever the model sees palsy; the left mouth corner droops.
    assert all(r["side"] == "left" for r in scored if r["verdict"] == "palsy suspected")
    # Right minus left commissure excursion: the drooping left corner moves less from the lip's
    # midline, so the difference is largest in the severe weeks and falls as the face heals.
    mouth = np.array([r["regions"]["mouth"]["difference"] for r in scored])
    assert mouth[0] > 2.0 and np.corrcoef(np.arange(len(mouth)), mouth)[0, 1] < -0.6, mouth
    # The guided exam's at-rest scores (100 = symmetric) rise as the face heals.
    rest = np.array([np.mean([v for v in r["scores"].values() if v is not None])
                     for r in scored])
    print("resting scores by date:", np.round(rest, 1))
    assert rest[-3:].mean() > rest[:3].mean() + 10, rest

    summary = trend(records)
    assert summary["n"] == len(NAMES) and summary["spearman_rho"] <= -0.6
    smooth = [pt["p_trend"] for pt in summary["points"]]
    assert smooth[0] > smooth[-1] and all(pt["low"] <= pt["p_trend"] <= pt["high"]
                                         for pt in summary["points"])
    first = summary["first_day_under_threshold"]
    assert first is not None and first > scored[0]["date"]
    assert all(s < summary["threshold"] for pt, s in zip(summary["points"], smooth, strict=True)
               if pt["date"] >= first)
    # Each region's smoothed at-rest score, with its band, ends higher than it starts.
    assert set(summary["regions"]) == {"brow", "eye", "midface", "mouth"}
    mean_trend = np.mean([[pt["score_trend"] for pt in pts]
                          for pts in summary["regions"].values()], axis=0)
    assert mean_trend[-1] > mean_trend[0] + 10, mean_trend
    assert all(pt["low"] <= pt["score_trend"] <= pt["high"]
               for pts in summary["regions"].values() for pt in pts if pt["low"] is not None)


def test_progress_command_json_per_file_from_a_zip(series, tmp_path, capsys):
    archive = tmp_path / "series.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted(series.iterdir()):
            zf.write(f, f"diary/{f.name}")
    assert main(["progress", str(archive), "--json"]) == 1  # one file cannot be read
    out, err = capsys.readouterr()
    records = [json.loads(line) for line in out.splitlines()]
    assert len(records) == len(NAMES) + 1
    dates = [r["date"] for r in records]
    assert dates == sorted(dates)  # date order
    good = [r for r in records if not r["error"]]
    assert {"path", "date", "p_palsy", "side", "regions", "verdict"} <= set(good[0])
    assert set(good[0]["regions"]) == {"brow", "eye", "mouth"}
    assert set(good[0]["scores"]) == {"brow", "eye", "midface", "mouth"}
    assert "Spearman rho (date, P(palsy)):" in err and "FAILED" in err
    assert "2022_03_14.jpg" in err


class _Upload(io.BytesIO):
    """An in-memory upload, as ``st.file_uploader`` hands it over."""

    def __init__(self, name: str, data: bytes) -> None:
        super().__init__(data)
        self.name = name


def test_progress_page_scores_uploads_from_memory_and_shows_the_trend(series, pyfeat_dir):
    from streamlit.testing.v1 import AppTest

    from palsy_core.inference.scoring import load_model
    from ui.progress import dates_from_upload, score_uploads

    uploads = [_Upload(f.name, f.read_bytes()) for f in sorted(series.iterdir())]
    uploads.append(_Upload("IMG_9999.jpg", (pyfeat_dir / "single_face.jpg").read_bytes()))
    dates = dates_from_upload(b"name,date\nIMG_9999.jpg,2022-03-21\n")
    records = score_uploads(load_model(DEFAULT_MODEL), uploads, dates)
    by_name = {r["path"]: r for r in records}
    assert by_name["IMG_9999.jpg"]["date"] == "2022-03-21"
    assert by_name["IMG_9999.jpg"]["date_source"] == "dates CSV"
    assert by_name["2022_03_14.jpg"]["error"] and by_name["2022_01_31.png"]["p_palsy"] < 0.5
    with pytest.raises(ValueError, match="line 2"):
        dates_from_upload(b"name,date\nx.jpg,21/03/2022\n")

    page = str(Path(__file__).resolve().parents[1] / "views" / "5_Progress.py")
    empty = AppTest.from_file(page, default_timeout=300).run()
    assert not empty.exception
    assert any("Score the series" in i.value for i in empty.info)
    at = AppTest.from_file(page, default_timeout=300)
    at.session_state["progress_records"] = records
    at.run()
    assert not at.exception, at.exception
    shown = {m.label: m.value for m in at.metric}
    assert shown["Dated files scored"] == str(len(NAMES) + 1)
    assert float(shown["Spearman rho (date, P(palsy))"]) <= -0.6
    assert shown["Under the threshold from"].startswith("2022-")
    table = at.dataframe[0].value
    assert len(table) == len(records) and list(table["date"])[:3] == [
        "2022-01-03", "2022-01-10", "2022-01-17"]
    assert any("2022_03_14.jpg" in e.value for e in at.error)
