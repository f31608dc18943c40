"""Drop the known-harmless lines MediaPipe and TFLite print from native code.

MediaPipe's graphs and the TFLite interpreter log from C++ straight to file descriptor 2, before
absl logging is configured, so neither Python's ``logging`` nor an environment variable reaches
them. Each detector or network created prints the same few lines ("Feedback manager requires a
model with a single signature", "Created TensorFlow Lite XNNPACK delegate"): about 170 per
dashboard session, burying anything that matters.

``filter_native_logs()`` routes descriptor 2 through a pipe and a reader thread that forwards
every line except those matching ``HARMLESS``. At exit the original descriptor is put back, which
ends the pipe, and the thread is joined, so the last lines written are never lost.
"""

from __future__ import annotations

import atexit
import os
import re
import sys
import threading

HARMLESS: tuple[re.Pattern[bytes], ...] = tuple(re.compile(p) for p in (
    rb"inference_feedback_manager\.cc:\d+\] Feedback manager requires a model with a single "
    rb"signature inference",
    rb"landmark_projection_calculator\.cc:\d+\] Using NORM_RECT without IMAGE_DIMENSIONS",
    rb"^INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.",
    rb"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR",
))

_installed = threading.Lock()
_active = False


def is_harmless(line: bytes) -> bool:
    return any(p.search(line) for p in HARMLESS)


def _forward(read_fd: int, write_fd: int) -> None:
    with os.fdopen(read_fd, "rb", buffering=0) as pipe:
        pending = b""
        while chunk := pipe.read(65536):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            kept = b"".join(line + b"\n" for line in lines if not is_harmless(line))
            if kept:
                os.write(write_fd, kept)
        if pending and not is_harmless(pending):
            os.write(write_fd, pending)


def filter_native_logs() -> bool:
    """Install the filter on descriptor 2 once per process; True when it is (now) active."""
    global _active
    with _installed:
        if _active:
            return True
        try:
            sys.stderr.flush()
            original = os.dup(2)
            read_fd, write_fd = os.pipe()
            os.dup2(write_fd, 2)
            os.close(write_fd)
        except OSError:
            return False
        reader = threading.Thread(target=_forward, args=(read_fd, original), daemon=True,
                                  name="native-log-filter")
        reader.start()

        def restore() -> None:
            sys.stderr.flush()
            os.dup2(original, 2)  # closes the pipe's last write end: the reader sees its end
            reader.join(timeout=5.0)

        atexit.register(restore)
        _active = True
        return True
