"""Benchmark runs in worker processes, and the lock on a benchmark's folder.

:func:`start` writes a planned run's spec (:mod:`adrec_recbole.benchmark.worker`) and starts
its worker, a fresh Python process with ``--threads`` threads, logging next to its record;
:func:`finish` reads the record the worker wrote, or writes a failed one for a worker that died
without one; :func:`stop` ends workers on Ctrl-C (their runs resume from their last epoch);
:func:`execute` runs one and waits. :class:`RunsLock` keeps a second benchmark from writing the
same folder.
"""
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from adrec_recbole.arithmetic import AVX2_ENVIRONMENT
from adrec_recbole.atomic import process_running
from adrec_recbole.benchmark.planning import BenchmarkError, PlannedRun
from adrec_recbole.benchmark.records import RECORD_FORMAT, read_json, relative_path, write_json
from adrec_recbole.benchmark.reuse import remove_superseded_failures
from adrec_recbole.benchmark.worker import utc_now

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _log_tail(path, lines=15):
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return "".join(handle.readlines()[-lines:])
    except OSError:
        return ""


def provenance(data_root, dataset):
    """A short description of the data from its ``.meta.json`` (source; users, items, interactions)."""
    meta = read_json(Path(data_root) / dataset / f"{dataset}.meta.json")
    if not meta:
        return None
    source = meta.get("source") or meta.get("format") or meta.get("origin")
    counts = meta.get("counts") or {}
    parts = [str(source)] if source else []
    if counts:
        parts.append(", ".join(f"{counts[key]:,} {key}" for key in ("users", "items", "interactions") if key in counts))
    return "; ".join(parts) or None


def record_fields(settings, planned, data_root):
    """What the record says about the run besides its outcome (portable: no absolute paths but
    the informational ``data.path``)."""
    return {
        "label": planned.label, "model": planned.model, "dataset": settings.dataset, "seed": planned.seed,
        "fingerprint": planned.fingerprint, "settings_key": planned.settings_key, "protocol": planned.protocol,
        "code_version": planned.code_version, "run_path_version": planned.run_path_version,
        "epochs": settings.epochs,
        "config_files": [relative_path(path) for path in settings.config_files],
        "variant_files": [relative_path(path) for path in planned.variant_files],
        "data": {"id": planned.data_id, "source": relative_path(Path(settings.data_path) / settings.dataset),
                 "path": relative_path(Path(data_root) / settings.dataset),
                 "provenance": provenance(data_root, settings.dataset)},
        "command": settings.command,
        "jobs": settings.jobs,  # runs sharing the machine with this one (timings), not part of its identity
    }


@dataclass
class Running:
    """A worker process started by :func:`start`."""

    planned: PlannedRun
    process: subprocess.Popen
    log_path: Path
    log_handle: object
    fields: dict
    start: float


def worker_environment(settings, environ):
    """A worker's environment: ``environ`` with this project first on the path, ``--threads``
    threads, and with ``--arithmetic avx2`` the :data:`~adrec_recbole.arithmetic.AVX2_ENVIRONMENT`
    variables (one the user set wins; the record lists what was pinned)."""
    env = dict(environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [PROJECT_ROOT, env.get("PYTHONPATH")]))
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = str(settings.threads)
    if settings.arithmetic == "avx2":
        env.update({name: value for name, value in AVX2_ENVIRONMENT.items() if name not in environ})
    return env


def start(settings, planned, data_root):
    """Start one planned run in a fresh worker process (its spec and log next to its record)."""
    stem = planned.stem
    runs_dir = settings.runs_dir
    config_dict = {
        "seed": planned.seed,
        "data_path": str(Path(data_root).resolve()),
        "checkpoint_dir": str((runs_dir / "checkpoints" / stem).resolve()),
        "result_file": str((runs_dir / "checkpoints" / f"{stem}.result.json").resolve()),
        "show_progress": False,
        "resume": not settings.force,  # an interrupted run continues from its last epoch
    }
    if settings.epochs is not None:
        config_dict["epochs"] = settings.epochs
    fields = record_fields(settings, planned, data_root)
    spec = {
        "model": planned.model, "dataset": settings.dataset, "seed": planned.seed,
        "config_files": [str(Path(path).resolve()) for path in list(settings.config_files) + planned.variant_files],
        "config_dict": config_dict, "threads": settings.threads,
        "record": str(planned.record_path.resolve()), "record_fields": fields,
        "keep_checkpoint": settings.keep_checkpoints,
    }
    spec_path = runs_dir / f"{stem}.spec.json"
    log_path = runs_dir / f"{stem}.log"
    write_json(spec_path, spec)
    if planned.record_path.exists():
        planned.record_path.unlink()  # an earlier failure; a crash now must not leave it standing
    env = worker_environment(settings, os.environ)
    log_handle = open(log_path, "w", encoding="utf-8")
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "adrec_recbole.benchmark.worker", str(spec_path)],
            stdout=log_handle, stderr=subprocess.STDOUT, env=env,
        )
    except BaseException:
        log_handle.close()
        raise
    return Running(planned, process, log_path, log_handle, fields, time.time())


def finish(settings, running):
    """The record of a worker that has exited (written here if the worker could not)."""
    running.log_handle.close()
    planned = running.planned
    record = read_json(planned.record_path)
    if record is None:  # killed (out of memory?) or died before it could write
        tail = " | ".join(_log_tail(running.log_path, 5).split("\n")).strip(" |")
        record = {
            "format": RECORD_FORMAT, **running.fields, "threads": settings.threads, "status": "failed",
            "error": f"worker exited with status {running.process.returncode} without a record "
                     f"(killed, e.g. out of memory, or crashed); end of {running.log_path.name}: " + tail[-600:],
            "wall_seconds": round(time.time() - running.start, 1),
            "process_seconds": round(time.time() - running.start, 1),
            "finished": utc_now(),
        }
        write_json(planned.record_path, record)
    if record.get("status") == "ok":  # earlier failures of the same settings are superseded
        remove_superseded_failures(planned)
    record.setdefault("log", str(running.log_path))
    return record


def stop(runnings, grace_seconds=30):
    """Stop worker processes (Ctrl-C): SIGTERM, then SIGKILL after ``grace_seconds``. Their runs keep
    the last finished epoch's checkpoint and resume on the next invocation."""
    for running in runnings:
        if running.process.poll() is None:
            running.process.terminate()
    deadline = time.time() + grace_seconds
    for running in runnings:
        try:
            running.process.wait(timeout=max(deadline - time.time(), 0.1))
        except subprocess.TimeoutExpired:
            running.process.kill()
            running.process.wait()
        running.log_handle.close()


def execute(settings, planned, data_root):
    """Run one planned run in a fresh worker process and wait; return its record (written in any case)."""
    running = start(settings, planned, data_root)
    try:
        running.process.wait()
    except KeyboardInterrupt:
        stop([running])
        raise
    return finish(settings, running)


class RunsLock:
    """``{runs}/benchmark.lock`` holding our pid: a second benchmark on the same folder stops at once.

    A lock left by a process that no longer exists (killed) is taken over.
    """

    def __init__(self, runs_dir):
        self.path = Path(runs_dir) / "benchmark.lock"

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                try:
                    owner = int(self.path.read_text().strip() or 0)
                except (OSError, ValueError):
                    owner = 0
                if owner and process_running(owner):
                    raise BenchmarkError(
                        f"another benchmark (pid {owner}) is writing {self.path.parent}; wait for it, or "
                        f"remove {self.path} if that process is not a benchmark"
                    ) from None
                self.path.unlink(missing_ok=True)  # stale: its owner is gone
                continue
            with os.fdopen(descriptor, "w") as handle:
                handle.write(str(os.getpid()))
            return self

    def __exit__(self, *exc):
        self.path.unlink(missing_ok=True)
        return False
