"""The dashboard server's stderr filter drops MediaPipe's known-harmless native lines only."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from palsy_core.native_logs import is_harmless


def test_known_lines_are_dropped_and_everything_else_kept():
    assert is_harmless(b"W0000 00:00:1796007544.54 31212 inference_feedback_manager.cc:114] "
                       b"Feedback manager requires a model with a single signature inference. "
                       b"Disabling support for feedback tensors.")
    assert is_harmless(b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.")
    assert not is_harmless(b"Traceback (most recent call last):")
    assert not is_harmless(b"E0000 face_landmarker_graph.cc:12] Could not open model file")


def test_a_process_with_the_filter_keeps_real_errors_and_drops_native_noise(pyfeat_dir):
    """A real MediaPipe detector and TFLite network in a child process: their repeated start-up
    lines disappear, a Python warning and a native-level write of another line come through."""
    script = textwrap.dedent(f"""
        import os, sys, warnings
        from palsy_core.native_logs import filter_native_logs
        assert filter_native_logs() and filter_native_logs()  # once, idempotent
        from palsy_core.extraction.pipeline import analyse_media
        analyse_media({str(pyfeat_dir / "single_face.jpg")!r}, "face.jpg")
        os.write(2, b"native: something real\\n")
        print("python: a real problem", file=sys.stderr)  # the last line before exit
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=300)
    assert run.returncode == 0, run.stderr.decode()[-2000:]
    err = run.stderr.decode()
    assert "native: something real" in err and "python: a real problem" in err
    assert "Feedback manager" not in err and "XNNPACK" not in err
    # Without the filter the same work prints them (the test would be vacuous otherwise).
    bare = subprocess.run([sys.executable, "-c", script.replace(
        "assert filter_native_logs() and filter_native_logs()", "pass")],
        capture_output=True, timeout=300)
    assert b"Feedback manager" in bare.stderr or b"XNNPACK" in bare.stderr
