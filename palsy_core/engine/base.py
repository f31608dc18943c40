"""What every engine shares: the per-file job contract, options, run statistics, the progress bar.

A *job* is the per-file work of one command (extract a file into the cache, screen a file, score
a manifest row). It is built on the driver from plain, picklable settings, sent to each worker
once, set up there once (``setup`` loads the detector, the face network, the model), then called
once per item; ``close`` releases what ``setup`` loaded. ``__call__`` returns a small record (a
dict of plain values): the heavy results (frames, modality arrays) go to the on-disk cache inside
the job, so a driver never holds every file's frames. A bad file is the job's own business: it
returns a record with an ``error``. Anything else a job raises is caught by the engine and
reported against that file (``failure_record``), and the rest continue.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tqdm import tqdm

log = logging.getLogger(__name__)

ENGINES = ("local", "ray")
ADDRESS_ENV = "RAY_ADDRESS"
MAX_ATTEMPTS = 3  # a file whose worker dies this many times is reported, not retried again


class FileJob(Protocol):
    """Per-file work: picklable; ``setup`` once per worker, then one call per item."""

    def setup(self) -> None: ...

    def __call__(self, item: Any) -> dict: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class EngineOptions:
    """How to run a batch: ``local`` (this process, file after file) or ``ray`` (a pool of actors
    on a local Ray instance or, with ``address`` or ``$RAY_ADDRESS``, on a running cluster)."""

    engine: str = "local"
    address: str | None = None
    workers: int | None = None  # Ray: default = the cluster's CPUs // cpus_per_worker
    cpus_per_worker: float = 1.0
    progress: bool = True
    in_flight: int = 2  # Ray: files queued on each worker, so none waits for the driver

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"unknown engine {self.engine!r}: choose one of {', '.join(ENGINES)}")
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"--workers must be at least 1 (got {self.workers})")
        if self.cpus_per_worker <= 0:
            raise ValueError(f"--cpus-per-worker must be positive (got {self.cpus_per_worker})")

    @property
    def cluster_address(self) -> str | None:
        return self.address or os.environ.get(ADDRESS_ENV) or None


@dataclass
class RunStats:
    """What one batch did: files, failures, worker deaths survived, where the work ran."""

    engine: str = "local"
    files: int = 0
    failed: int = 0
    retried: int = 0  # files resubmitted because their worker died
    workers: int = 1
    startup_seconds: float = 0.0  # until every worker had set up its job
    seconds: float = 0.0  # from the first file submitted to the last result
    per_node: dict[str, int] = field(default_factory=dict)  # node id -> files scored there

    @property
    def files_per_second(self) -> float:
        return self.files / self.seconds if self.seconds > 0 else float("nan")


def failure_record(exc: BaseException) -> dict:
    """The record of a file whose job raised: the error's type and message."""
    return {"error": f"{type(exc).__name__}: {exc}"}


def call_job(job: FileJob, item: Any) -> dict:
    """Run ``job`` on one item; an unexpected error becomes that file's record, not the batch's
    end (the job itself reports the expected ones, such as an unreadable file)."""
    try:
        return job(item)
    except Exception as exc:
        log.warning("%r failed on %s", job, item, exc_info=True)
        return failure_record(exc)


def cap_threads(n: int) -> None:
    """Size a worker's native thread pools to the CPUs it was given (OpenMP, torch, OpenCV)."""
    n = max(1, int(n))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n)
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:
        pass
    try:
        import cv2

        cv2.setNumThreads(n)
    except ImportError:
        pass


_claimed: list = []  # lock files held for this process's pinned cores (released when it exits)


def pin_to_cores(n: int, lock_dir: Path | None = None) -> list[int]:
    """Pin this process (every thread) to ``n`` cores no other worker on this machine holds.

    Ray reserves CPUs but does not isolate them: a worker's native pools (MediaPipe's graph, video
    decoding, the overlap of landmarks with the heavy modalities) would spread over every core
    and make two one-CPU workers fight. Each worker claims free cores through ``flock`` on one
    lock file per core (the kernel releases a dead worker's locks), so workers on one machine,
    even of different Ray nodes, never share a core. Returns the cores, or ``[]`` (unpinned)
    when ``n`` covers the whole machine or fewer than ``n`` cores are free.
    """
    import fcntl

    cores = sorted(os.sched_getaffinity(0))
    if n <= 0 or n >= len(cores):
        return []
    lock_dir = lock_dir or Path(tempfile.gettempdir()) / "palsy-fusion-cores"
    lock_dir.mkdir(parents=True, exist_ok=True)
    held = []
    for core in cores:
        fh = open(lock_dir / f"cpu{core}.lock", "w")  # noqa: SIM115 - held for the process's life
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            continue
        held.append((core, fh))
        if len(held) == n:
            break
    if len(held) < n:
        for _, fh in held:
            fh.close()
        return []
    _claimed.extend(fh for _, fh in held)
    mine = {core for core, _ in held}
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(tid), mine)
    return sorted(mine)


class Progress:
    """One progress bar for both engines: files done, files/s (tqdm's rate), failures, retries."""

    def __init__(self, total: int, desc: str, enabled: bool) -> None:
        self.bar = tqdm(total=total, desc=desc, unit="file", disable=not enabled)
        self.failed = self.retried = 0

    def done(self, record: dict) -> None:
        self.failed += bool(record.get("error"))
        self._update(1)

    def retry(self) -> None:
        self.retried += 1
        self._update(0)

    def _update(self, n: int) -> None:
        self.bar.set_postfix(failed=self.failed, retried=self.retried, refresh=False)
        self.bar.update(n)

    def close(self) -> None:
        self.bar.close()


class InOrder:
    """Releases results in submission order, holding only those that finished early."""

    def __init__(self) -> None:
        self.next = 0
        self.waiting: dict[int, dict] = {}

    def add(self, index: int, record: dict) -> list[tuple[int, dict]]:
        self.waiting[index] = record
        ready = []
        while self.next in self.waiting:
            ready.append((self.next, self.waiting.pop(self.next)))
            self.next += 1
        return ready
