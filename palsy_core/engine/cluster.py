"""The Ray engine: a pool of actors, each setting up the job once, on a local Ray instance or a
running cluster.

Scheduling is the driver's own small loop, so that every file is accounted for exactly once:

- each actor holds up to ``in_flight`` files (its queue never runs dry while the driver waits);
- a finished file's record is released in manifest order (early finishers wait in a small
  buffer of records, never of frames);
- a worker process that dies (killed, out of memory, a crash in native code) fails its queued
  files with ``RayActorError``: they go back to the front of the queue, a fresh actor takes the
  dead one's place, and a file whose worker has died ``MAX_ATTEMPTS`` times is reported as failed
  rather than retried for ever. A file counts once: when its record comes back;
- Ctrl-C kills the pool and, if this process started Ray, stops it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from palsy_core.engine.base import (
    ADDRESS_ENV,
    MAX_ATTEMPTS,
    EngineOptions,
    FileJob,
    InOrder,
    Progress,
    RunStats,
    call_job,
    cap_threads,
    failure_record,
    pin_to_cores,
)
from palsy_core.native_logs import filter_native_logs

log = logging.getLogger(__name__)

LOCAL_OBJECT_STORE = 256 * 1024 * 1024  # records are small: the store only carries jobs
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the folder holding palsy_core
INTERRUPT_POLL_S = 0.2  # how often a Ray run checks for Ctrl-C while it waits for a result


class EngineUnavailable(RuntimeError):
    """Ray is missing, or its cluster cannot be reached or used."""


def _ray():
    try:
        import ray
    except ImportError as exc:
        raise EngineUnavailable(
            "--engine ray needs Ray (pinned in requirements.txt): run 'make setup'") from exc
    return ray


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast, with the reason, when nothing answers at a ``host:port`` (or ``ray://``) cluster
    address; Ray itself would retry for minutes. ``auto`` and ``local`` are Ray's to resolve."""
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise EngineUnavailable(
            f"no Ray cluster answers at {address} ({exc.strerror or exc}): start one with "
            f"'ray start --head --port={port}' on {host}, or leave --address and {ADDRESS_ENV} "
            "unset to run on this machine") from exc


class _Worker:
    """One pool member: caps its threads to its CPUs, sets the job up once, runs files."""

    def __init__(self, job: FileJob, cpus: float) -> None:
        filter_native_logs()  # the detectors' start-up chatter, once per worker otherwise
        self.cores = pin_to_cores(int(cpus)) if float(cpus).is_integer() else []
        cap_threads(int(cpus))
        self.job = job
        self.node = ""

    def ready(self) -> tuple[int, str]:
        import ray

        self.job.setup()
        self.node = ray.get_runtime_context().get_node_id()
        return os.getpid(), self.node

    def run(self, item: Any) -> tuple[dict, str]:
        return call_job(self.job, item), self.node


@dataclass
class _Slot:
    actor: Any
    alive: bool = True
    load: int = 0
    pid: int = 0
    node: str = ""


class RayEngine:
    def __init__(self, options: EngineOptions) -> None:
        self.options = options
        self.stats = RunStats(engine="ray")
        self.ray = _ray()
        self._started = False
        self._slots: list[_Slot] = []
        if self.ray.is_initialized():
            return
        # Workers import palsy_core from this checkout (on a cluster: the same path on each node,
        # or an installed copy first on their path).
        path = os.pathsep.join(p for p in (PACKAGE_ROOT, os.environ.get("PYTHONPATH")) if p)
        runtime_env = {"env_vars": {"PYTHONPATH": path}}
        address = options.cluster_address
        if address:
            check_reachable(address)
        try:
            if address:
                self.ray.init(address=address, runtime_env=runtime_env, log_to_driver=True,
                              logging_level=logging.WARNING)
            else:
                self.ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False,
                              object_store_memory=LOCAL_OBJECT_STORE, runtime_env=runtime_env,
                              logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"the Ray cluster at {address}" if address else "a local Ray instance"
            raise EngineUnavailable(f"cannot start or join {where}: {exc}") from exc
        self._started = True

    # -- the pool -----------------------------------------------------------------------------

    def _cluster_cpus(self) -> float:
        return float(self.ray.cluster_resources().get("CPU", 1.0))

    def _spawn(self, job_ref: Any) -> _Slot:
        cpus = self.options.cpus_per_worker
        actor = self.ray.remote(num_cpus=cpus, max_restarts=0, max_task_retries=0)(_Worker)
        return _Slot(actor.remote(job_ref, cpus))

    def _start_pool(self, job: FileJob, n_items: int) -> None:
        ray = self.ray
        workers = self.options.workers or max(1, int(self._cluster_cpus()
                                                      // self.options.cpus_per_worker))
        workers = max(1, min(workers, n_items))
        job_ref = ray.put(job)
        self._job_ref = job_ref
        self._slots = [self._spawn(job_ref) for _ in range(workers)]
        try:
            info = ray.get([s.actor.ready.remote() for s in self._slots])
        except ray.exceptions.RayError as exc:
            self._kill_pool()
            raise EngineUnavailable(f"a Ray worker could not set up {job!r}: "
                                    f"{getattr(exc, 'cause', None) or exc}") from exc
        for slot, (pid, node) in zip(self._slots, info, strict=True):
            slot.pid, slot.node = pid, node

    def _kill_pool(self) -> None:
        for slot in self._slots:
            with contextlib.suppress(self.ray.exceptions.RayError, ValueError):  # already gone
                self.ray.kill(slot.actor)
        self._slots = []

    def worker_pids(self) -> list[int]:
        """Process ids of the live workers (for tests that kill one mid-run)."""
        return [s.pid for s in self._slots if s.alive and s.pid]

    # -- one batch ----------------------------------------------------------------------------

    def map(self, job: FileJob, items: Iterable[Any], desc: str = "files"
            ) -> Iterator[tuple[int, dict]]:
        """``(index, record)`` for every item, in order, each as soon as it and all before it are
        done."""
        ray = self.ray
        items = list(items)
        self.stats = stats = RunStats(engine="ray")
        if not items:
            return
        t0 = time.perf_counter()
        self._start_pool(job, len(items))
        stats.workers = len(self._slots)
        stats.startup_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        pending: deque[int] = deque(range(len(items)))
        attempts = [0] * len(items)
        in_flight: dict[Any, tuple[int, _Slot]] = {}
        order = InOrder()
        progress = Progress(len(items), desc, self.options.progress)

        def fill(slot: _Slot) -> None:
            while slot.alive and slot.load < self.options.in_flight and pending:
                i = pending.popleft()
                in_flight[slot.actor.run.remote(items[i])] = (i, slot)
                slot.load += 1

        def worker_died(i: int, slot: _Slot, exc: Exception) -> dict | None:
            if slot.alive:
                slot.alive = False
                log.warning("a Ray worker (pid %s) died: %s; its files go to a new worker",
                            slot.pid, exc)
                fresh = self._spawn(self._job_ref)
                fresh.actor.ready.remote()  # runs before any file sent to it
                self._slots.append(fresh)
            attempts[i] += 1
            if attempts[i] >= MAX_ATTEMPTS:
                return {"error": f"the worker processing this file died {attempts[i]} times "
                                 f"(last: {type(exc).__name__})"}
            pending.appendleft(i)
            stats.retried += 1
            progress.retry()
            return None

        # Ctrl-C only sets a flag, checked between short waits: raised inside Ray's blocking
        # wait, a KeyboardInterrupt can be swallowed by its native code and the run goes on.
        interrupted = threading.Event()

        def on_sigint(signum: int, frame: object) -> None:
            if interrupted.is_set():  # a second Ctrl-C: stop at once
                raise KeyboardInterrupt
            interrupted.set()

        previous = (signal.signal(signal.SIGINT, on_sigint)
                    if threading.current_thread() is threading.main_thread() else None)
        try:
            for slot in self._slots:
                fill(slot)
            while order.next < len(items):
                ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=INTERRUPT_POLL_S)
                if interrupted.is_set():
                    raise KeyboardInterrupt
                if not ready:
                    continue
                ref = ready[0]
                i, slot = in_flight.pop(ref)
                slot.load -= 1
                record: dict | None
                try:
                    record, node = ray.get(ref)
                    stats.per_node[node] = stats.per_node.get(node, 0) + 1
                except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as exc:
                    record = worker_died(i, slot, exc)
                except ray.exceptions.RayTaskError as exc:
                    record = failure_record(exc.cause or exc)
                for s in self._slots:
                    fill(s)
                if record is None:
                    continue
                for j, rec in order.add(i, record):
                    stats.files += 1
                    stats.failed += bool(rec.get("error"))
                    stats.seconds = time.perf_counter() - t0
                    progress.done(rec)
                    yield j, rec
        except KeyboardInterrupt:
            print(f"\ninterrupted: stopping the Ray workers ({order.next} of {len(items)} files "
                  "done and written)", file=sys.stderr)
            raise
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
            progress.close()
            self._kill_pool()

    def close(self) -> None:
        self._kill_pool()
        if self._started and self.ray.is_initialized():
            self.ray.shutdown()
            self._started = False

    def __enter__(self) -> RayEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
