"""Nothing lost, nothing leaked: uploads leave no trace on disk, nothing goes on the network,
checkpoints cannot run code, the server is local with XSRF and an upload limit, a long analysis
can be cancelled, and two sessions analysing at once never see each other's data.
"""

from __future__ import annotations

import ast
import gc
import os
import socket
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
import torch
from browser_util import CHROMIUM, chromium, streamlit_server
from conftest import make_test_model
from streamlit.testing.v1 import AppTest

from palsy_core import cli
from palsy_core.extraction.pipeline import Settings, analyse_media
from palsy_core.inference import screen
from palsy_core.inference.explain import grad_cam
from palsy_core.inference.scoring import ScoredMedia, load_model
from palsy_core.model.checkpoint import FORMAT_VERSION

ROOT = Path(__file__).resolve().parents[1]
ANALYSE = str(ROOT / "views" / "1_Analyse.py")
TIMEOUT = 300


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    return make_test_model(tmp_path_factory.mktemp("privacy_model") / "m.pt")


@pytest.fixture(autouse=True)
def _use_test_model(monkeypatch, model_file):
    monkeypatch.setenv("PALSY_MODEL", str(model_file))


def _upload(at: AppTest, path: Path, name: str | None = None, max_frames: int = 10) -> AppTest:
    """Upload ``path`` through the Analyse page's uploader (as the browser would) and run;
    ``max_frames`` is the page's frame cap (10 to 300 in steps of 10)."""
    at.slider(key="settings_max_frames").set_value(max_frames)
    mime = "video/mp4" if path.suffix == ".mp4" else "image/jpeg"
    at.file_uploader(key="upload").set_value((name or path.name, path.read_bytes(), mime))
    return at.run()


# --- nothing written to disk ------------------------------------------------------------------

_WRITES: list[str] | None = None  # file-system changes seen by the audit hook while recording
_MUTATING = ("os.mkdir", "os.rename", "os.replace", "os.link", "os.symlink", "os.truncate",
             "shutil.copyfile", "shutil.move", "shutil.make_archive")


def _audit(event: str, args: tuple) -> None:
    if _WRITES is None:
        return
    if event == "open":
        path, mode, flags = args
        if isinstance(path, int) or path is None:
            return
        writing = (any(c in mode for c in "wax+") if isinstance(mode, str)
                   else bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)))
        if writing:
            _WRITES.append(f"open {path!s} ({mode or flags})")
    elif event in _MUTATING:
        _WRITES.append(f"{event} {args[0]!s}")


sys.addaudithook(_audit)  # audit hooks cannot be removed: it records only inside ``_recording``


@contextmanager
def _recording() -> Iterator[list[str]]:
    """Every file this process opens for writing (or creates, renames...) inside the block."""
    global _WRITES
    _WRITES = []
    try:
        yield _WRITES
    finally:
        writes, _WRITES = _WRITES, None
        del writes


def _files(*roots: Path) -> set[Path]:
    return {p for root in roots if root.exists() for p in root.rglob("*")}


def test_upload_analysis_writes_nothing_to_disk(pyfeat_dir, monkeypatch, tmp_path):
    """The Analyse page analyses uploads from memory: no file is created or written anywhere
    (Python-level file operations are audited; temp, cache, home cache and repository folders
    are compared before and after, which also covers native libraries)."""
    tmp, cache = tmp_path / "tmp", tmp_path / "cache"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setenv("PALSY_CACHE", str(cache))
    watched = (tmp, cache, ROOT, Path.home() / ".cache" / "palsy-fusion")
    with _recording() as writes:  # the audit does see a write
        (tmp / "probe").write_bytes(b"x")
        assert writes == [f"open {tmp / 'probe'} (w)"]
    (tmp / "probe").unlink()
    at = AppTest.from_file(ANALYSE, default_timeout=TIMEOUT).run()
    _upload(at, pyfeat_dir / "single_face.jpg", "warm-up.jpg")  # imports and caches settle
    before = _files(*watched)
    with _recording() as writes:
        _upload(at, pyfeat_dir / "single_face.mp4", "patient_clip.mp4")
        assert at.session_state["analysis_name"] == "patient_clip.mp4"
        _upload(at, pyfeat_dir / "0-f1-su-ph.jpg", "patient_photo.jpg")
        assert at.session_state["analysis_name"] == "patient_photo.jpg"
        recorded = list(writes)
    assert not at.exception and not at.error
    assert at.session_state["analysis"].analysis.has_face.all()
    assert recorded == []
    assert _files(*watched) - before == set()


# --- no network at run time -------------------------------------------------------------------


@pytest.fixture
def no_network(monkeypatch) -> list[str]:
    """Every way Python code opens a connection or resolves a name raises; attempts are kept."""
    attempts: list[str] = []

    def refuse(what: str):
        def blocked(*args, **kwargs):
            attempts.append(f"{what}{args[1:2] or args[:1]}")
            raise OSError(f"network blocked by the test ({what})")
        return blocked

    monkeypatch.setattr(socket.socket, "connect", refuse("connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("connect_ex"))
    monkeypatch.setattr(socket.socket, "sendto", refuse("sendto"))
    monkeypatch.setattr(socket, "create_connection", refuse("create_connection"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
    with pytest.raises(OSError, match="network blocked"):
        urllib.request.urlopen("http://127.0.0.1:9/", timeout=1)
    attempts.clear()
    return attempts


def test_analysis_and_prediction_run_with_the_network_blocked(no_network, pyfeat_dir,
                                                             model_file, capsys):
    analysis = analyse_media(pyfeat_dir / "single_face.mp4", "clip.mp4",
                             Settings(sample_fps=5.0, max_frames=6))
    score = ScoredMedia(load_model(model_file), analysis).score()
    assert analysis.has_face.all() and 0.0 <= score.p <= 1.0

    photo, video = pyfeat_dir / "single_face.jpg", pyfeat_dir / "single_face.mp4"
    assert cli.main(["predict", str(photo), str(video), "--model", str(model_file), "--json",
                     "--max-frames", "6"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all('"verdict": "' in line for line in lines)

    at = AppTest.from_file(ANALYSE, default_timeout=TIMEOUT).run()
    _upload(at, video)
    assert not at.exception and not at.error
    assert at.session_state["analysis"].analysis.n_frames == 10
    assert any(m.label == "Verdict" for m in at.metric)
    assert no_network == []  # not even an attempt


# --- checkpoints cannot run code --------------------------------------------------------------


def _calls(tree: ast.AST, module: str, function: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)
            and isinstance(n.func, ast.Attribute) and n.func.attr == function
            and isinstance(n.func.value, ast.Name) and n.func.value.id == module]


def test_every_load_of_a_file_refuses_pickled_code():
    """torch.load always with weights_only=True, np.load always with allow_pickle=False."""
    sources = [*ROOT.rglob("palsy_core/**/*.py"), *ROOT.glob("ui/*.py"), *ROOT.glob("views/*.py"),
               ROOT / "app.py"]
    found = 0
    for path in sources:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for module, function, keyword in (("torch", "load", "weights_only"),
                                          ("np", "load", "allow_pickle")):
            for call in _calls(tree, module, function):
                found += 1
                values = {k.arg: getattr(k.value, "value", None) for k in call.keywords}
                assert values.get(keyword) is (keyword == "weights_only"), \
                    f"{path.name}:{call.lineno}: {module}.{function} without {keyword}"
        assert not [n for n in ast.walk(tree) if isinstance(n, ast.Attribute)
                    and n.attr in ("loads", "load") and getattr(n.value, "id", "") == "pickle"], \
            path.name
    assert found >= 3  # the checkpoint, the backbone weights and the extraction cache


def test_a_checkpoint_that_would_run_code_is_refused_everywhere(tmp_path, pyfeat_dir, capsys,
                                                               monkeypatch):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    evil = tmp_path / "evil.pt"
    torch.save({"format_version": FORMAT_VERSION, "config": {}, "state_dict": {},
                "meta": {"x": Exploit()}, "versions": {}}, evil)
    assert b"system" in evil.read_bytes()  # a real code-running pickle inside

    status = cli.main(["predict", str(pyfeat_dir / "single_face.jpg"), "--model", str(evil)])
    err = capsys.readouterr().err
    assert status == 2 and "was refused" in err and "could run code" in err
    run = subprocess.run([sys.executable, "-m", "palsy_core", "predict",
                          str(pyfeat_dir / "single_face.jpg"), "--model", str(evil)], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 2 and "could run code" in run.stderr
    assert "Traceback" not in run.stderr

    monkeypatch.setenv("PALSY_MODEL", str(evil))
    at = AppTest.from_file(ANALYSE, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert any("could run code" in e.value for e in at.error)
    assert not marker.exists()


# --- the server: local only, XSRF on, upload limit --------------------------------------------


def _listening(port: int) -> set[str]:
    """Local addresses with a socket listening on ``port`` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table, size in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                raw = bytes.fromhex(address)
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, size, 4))  # host order
                found.add(socket.inet_ntop(socket.AF_INET if size == 4 else socket.AF_INET6,
                                           raw))
    return found


@pytest.fixture(scope="module")
def server(model_file, tmp_path_factory) -> Iterator[tuple[int, Path]]:
    """A real server with the repository's config and a 1 MB upload limit: (port, its log)."""
    log = tmp_path_factory.mktemp("server") / "streamlit.log"
    with streamlit_server({"PALSY_MODEL": str(model_file)}, log,
                          "--server.maxUploadSize", "1") as base:
        yield int(base.rsplit(":", 1)[1]), log


@contextmanager
def _browser() -> Iterator:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    with chromium() as browser:
        yield browser


def _open_analyse(browser, port: int):
    """A new browser session (its own context) on the Analyse page, once its uploader shows."""
    from playwright.sync_api import expect

    page = browser.new_context().new_page()
    page.goto(f"http://localhost:{port}/Analyse")
    expect(page.get_by_test_id("stFileUploader")).to_be_visible(timeout=120_000)
    return page


def test_server_is_local_with_xsrf_and_an_upload_limit(server, pyfeat_dir):
    """The repository's config makes ``streamlit run`` listen on loopback only, refuse uploads
    without the XSRF token, and (here with a 1 MB limit) say why a larger file is refused."""
    port, log = server
    if not Path("/proc/net/tcp").exists():
        pytest.skip("needs Linux /proc/net/tcp to list listening sockets")
    addresses = _listening(port)
    assert addresses and addresses <= {"127.0.0.1", "::1"}, addresses

    put = urllib.request.Request(f"http://127.0.0.1:{port}/_stcore/upload_file/s/f",
                                 data=b"x", method="PUT")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(put, timeout=10)
    assert refused.value.code == 403 and b"XSRF" in refused.value.read()

    from playwright.sync_api import expect

    big = (pyfeat_dir / "BWPictureHuman.jpg").read_bytes()
    assert len(big) > 1 << 20
    with _browser() as browser:
        page = _open_analyse(browser, port)
        uploader = page.get_by_test_id("stFileUploader")
        expect(uploader).to_contain_text("1MB per file")
        uploader.locator("input[type=file]").set_input_files(
            {"name": "big.jpg", "mimeType": "image/jpeg", "buffer": big})
        expect(page.get_by_text("File must be 1.0MB or smaller.")).to_be_visible(timeout=60_000)
    assert "Traceback" not in log.read_text(errors="replace")


def test_two_browser_sessions_analysing_at_once_see_only_their_own_data(server, pyfeat_dir,
                                                                          model_file):
    """Two browser contexts (two users) upload different files at the same moment; each page
    shows its own file's result, computed as analysing that file alone gives, and nothing of
    the other's."""
    from playwright.sync_api import expect

    port, log = server
    inputs = {"a_clip.mp4": ("video/mp4", pyfeat_dir / "single_face.mp4"),
              "b_photo.jpg": ("image/jpeg", pyfeat_dir / "0-f1-su-ph.jpg")}
    loaded = load_model(model_file)
    with _browser() as browser:
        pages = {name: _open_analyse(browser, port) for name in inputs}
        for name, (mime, path) in inputs.items():  # both analyses start before either ends
            pages[name].get_by_test_id("stFileUploader").locator("input[type=file]") \
                .set_input_files({"name": name, "mimeType": mime, "buffer": path.read_bytes()})
        for name, (_, path) in inputs.items():
            page = pages[name]
            expect(page.get_by_text(f"Result: {name}")).to_be_visible(timeout=300_000)
            p = ScoredMedia(loaded, analyse_media(path, name, Settings(max_frames=150))).score().p
            metric = page.get_by_test_id("stMetric").filter(has_text="P(palsy)").first
            expect(metric).to_contain_text(f"{100 * p:.1f}%")
            other = next(n for n in inputs if n != name)
            assert other not in page.content()
    assert "Traceback" not in log.read_text(errors="replace")


def test_two_app_sessions_keep_their_own_state(pyfeat_dir, model_file):
    """Two AppTest sessions alive together, their runs interleaved: each keeps its own
    analysis, toggles and results."""
    inputs = {"A": (pyfeat_dir / "single_face.mp4", "a_clip.mp4"),
              "B": (pyfeat_dir / "0-f1-su-ph.jpg", "b_photo.jpg")}
    sessions = {k: AppTest.from_file(ANALYSE, default_timeout=TIMEOUT).run() for k in inputs}
    for key, (path, name) in inputs.items():
        _upload(sessions[key], path, name)
    sessions["A"].checkbox(key="analyse_mod_rgb").uncheck().run()
    sessions["B"].run()
    loaded = load_model(model_file)
    for key, (path, name) in inputs.items():
        at = sessions[key]
        assert not at.exception and not at.error
        assert [s.value for s in at.subheader if s.value.startswith("Result")] == \
            [f"Result: {name}"]
        alone = ScoredMedia(loaded, analyse_media(path, name, Settings(max_frames=10)))
        enabled = at.session_state["enabled"]
        assert enabled == (loaded.modalities[1:] if key == "A" else loaded.modalities)
        p = alone.score(enabled).p
        assert any(m.label == "P(palsy)" and m.value == f"{100 * p:.1f}%" for m in at.metric)
    a, b = (sessions[k].session_state for k in inputs)
    assert a["analysis"] is not b["analysis"] and a["upload_key"] != b["upload_key"]


# --- cancelling and sessions ------------------------------------------------------------------


def test_a_long_analysis_can_be_cancelled_and_the_app_stays_usable(pyfeat_dir, monkeypatch):
    """Clicking Cancel makes Streamlit rerun the page, which interrupts the running analysis at
    its next progress update (an exception from that ``st`` call). AppTest cannot click while a
    script runs, so the interruption is made the same way, by ``st.stop()`` in the progress
    callback after three frames; the click itself is then real: its callback runs before the
    rerun."""
    real = screen.analyse_media  # what the dashboard's front-door call runs
    seen: list[int] = []

    def interrupted_after_three(source, name, settings, detector=None, on_frame=None):
        def tick(frame):
            seen.append(frame.index)
            if len(seen) > 3:
                st.stop()
            on_frame(frame)
        return real(source, name, settings, detector, on_frame=tick)

    at = AppTest.from_file(ANALYSE, default_timeout=TIMEOUT).run()
    _upload(at, pyfeat_dir / "single_face.jpg", "earlier.jpg")  # a finished earlier analysis
    earlier = at.session_state["analysis"]

    monkeypatch.setattr(screen, "analyse_media", interrupted_after_three)
    _upload(at, pyfeat_dir / "WolfgangLanger_Pexels.mp4", "long.mp4", max_frames=20)
    assert not at.exception and len(seen) == 4
    assert at.button(key="cancel_analysis").label == "Cancel analysis"
    assert at.session_state["analysis"] is earlier  # nothing partial was kept
    gc.collect()
    assert not [t.name for t in threading.enumerate() if t.name.startswith("palsy-")]

    at.button(key="cancel_analysis").click().run()
    assert not at.exception and len(seen) == 4  # not started again by the rerun
    assert any(i.value == "Analysis cancelled: nothing of it was kept." for i in at.info)
    assert at.session_state["analysis"] is earlier  # kept in the session...
    # ...but not shown under the file whose analysis was cancelled (it would read as its result).
    assert not any(s.value.startswith("Result: ") for s in at.subheader)
    at.run()  # any rerun (a widget touched) keeps the notice and starts nothing
    assert not at.exception and len(seen) == 4
    assert any(i.value == "Analysis cancelled: nothing of it was kept." for i in at.info)

    monkeypatch.setattr(screen, "analyse_media", real)
    at.button(key="analyse_again").click().run()  # same file, same settings
    assert not at.exception and not at.error
    assert at.session_state["analysis_name"] == "long.mp4"
    assert at.session_state["analysis"].analysis.n_frames == 20
    assert not any("cancelled" in i.value for i in at.info)


def test_grad_cam_ignores_another_sessions_scoring_on_the_shared_model(pyfeat_dir, model_file):
    """Sessions share one model: while one computes Grad-CAM (a hooked forward pass), another
    scoring its own video runs forward passes too. The heat map must be the one computed alone,
    never built from the other session's activations (nor fail on them)."""
    loaded = load_model(model_file)
    mine = analyse_media(pyfeat_dir / "single_face.jpg", "mine.jpg")
    theirs = analyse_media(pyfeat_dir / "single_face.mp4", "theirs.mp4",
                           Settings(sample_fps=5.0, max_frames=10))
    alone = grad_cam(loaded, mine, 0, "rgb")
    stop = threading.Event()
    passes = []

    def other_session() -> None:
        while not stop.is_set():
            ScoredMedia(loaded, theirs, batch_size=1)
            passes.append(1)

    worker = threading.Thread(target=other_session)
    worker.start()
    try:
        maps = [grad_cam(loaded, mine, 0, "rgb") for _ in range(5)]
    finally:
        stop.set()
        worker.join()
    assert passes  # the other session really ran alongside
    for heat in maps:
        np.testing.assert_allclose(heat, alone, atol=1e-5)
