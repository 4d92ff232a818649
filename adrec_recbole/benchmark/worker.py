"""One benchmark run in its own process: ``python -m adrec_recbole.benchmark.worker SPEC.json``.

The benchmark (:mod:`adrec_recbole.benchmark.runner`) writes a spec file per run and starts
this module in a fresh Python process, so that the peak RSS RecBole's run reports
(``ru_maxrss`` of the process) belongs to that run alone and a crash cannot take the other
runs with it. It can also be started by hand to repeat one run exactly.

Spec keys: ``model``, ``dataset``, ``seed``, ``config_files`` (extra yaml, after the project's
own), ``config_dict`` (RecBole settings, highest priority), ``threads``, ``record`` (the run
JSON to write), ``record_fields`` (copied into the record: label, fingerprint, code version,
...; see :func:`adrec_recbole.benchmark.runner.record_fields`), ``keep_checkpoint``.

The run goes through :func:`adrec_recbole.quick_start.run`, the same path as ``run_recbole.py``.
The record is written atomically: ``status`` ``ok`` with ``result`` (what ``run`` returns, less
its machine-local paths: the run folder is kept by name only), or ``failed`` with ``error`` and
the last lines of the traceback (the whole traceback goes to the run's log); the exit status is 0
or 1. ``wall_seconds`` is the run (data loading, training, test), ``process_seconds`` the worker
process's whole life (imports too); ``started``/``finished`` are UTC. Records are committed, so they hold
no absolute path beyond informational ones and stay a few KB. Ctrl-C (or SIGTERM) writes no
record and leaves the run's ``last`` checkpoint: the next benchmark resumes it.
"""
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import traceback

PROCESS_START = time.time()  # before torch and RecBole are imported: process_seconds is the whole process

from adrec_recbole.benchmark.records import RECORD_FORMAT, write_json  # noqa: E402

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: keys of ``quick_start.run``'s result that only make sense on the machine that ran it
LOCAL_RESULT_KEYS = ("checkpoint", "result_file", "command")
TRACEBACK_LINES = 6


def git_commit():
    """The project's git commit (with ``+dirty`` for uncommitted changes), or None."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=PROJECT_ROOT, capture_output=True,
            text=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (commit + ("+dirty" if dirty else "")) or None


def machine():
    """What the run's speed and arithmetic depend on: CPU model, logical CPUs, system, ATen's CPU
    instruction set and the variables pinning it (:mod:`adrec_recbole.arithmetic`), the GPU if any
    (no host name)."""
    cpu = platform.processor() or None
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu)
    except OSError:
        pass
    import torch

    from adrec_recbole.arithmetic import arithmetic

    found = {"cpu": cpu, "cpus": os.cpu_count(), "system": f"{platform.system()} {platform.machine()}"}
    cpu_arithmetic = arithmetic("cpu")
    found["cpu_capability"] = cpu_arithmetic["cpu_capability"]
    if cpu_arithmetic["pinned"]:
        found["pinned"] = cpu_arithmetic["pinned"]
    if torch.cuda.is_available():
        found["gpu"] = torch.cuda.get_device_name(0)
    return found


def utc_now():
    """The time as ``2026-11-28T04:21:48Z`` (UTC: records from machines in other time zones sort right)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _remove(path):
    if path and os.path.isfile(path):
        os.remove(path)


_FILE = re.compile(r'File "([^"]+)"')


def portable_traceback(text):
    """Traceback lines with file names that mean the same on every machine: relative to the project,
    from ``site-packages/`` on, or the last two path components."""
    def shorten(match):
        path = match.group(1)
        if path.startswith(PROJECT_ROOT + os.sep):
            path = os.path.relpath(path, PROJECT_ROOT)
        elif "site-packages" + os.sep in path:
            path = path.split("site-packages" + os.sep, 1)[1]
        elif os.path.isabs(path):
            path = os.path.join(*path.split(os.sep)[-2:])
        return f'File "{path}"'

    return _FILE.sub(shorten, text)


def _shorten(text, limit):
    text = str(text)
    return text if len(text) <= limit else text[:limit] + " [...]"


def run_spec(spec):
    """Run one spec in this process and return its record (also written to ``spec['record']``)."""
    threads = int(spec.get("threads") or 1)
    import torch

    torch.set_num_threads(threads)
    from adrec_recbole.quick_start import run
    record = {
        "format": RECORD_FORMAT,
        "label": spec["model"], "model": spec["model"], "dataset": spec["dataset"], "seed": spec["seed"],
        **(spec.get("record_fields") or {}),
        "threads": threads, "pid": os.getpid(), "git_head": git_commit(), "python": platform.python_version(),
        "torch": torch.__version__, "machine": machine(), "started": utc_now(),
    }
    sys.argv = sys.argv[:1]  # RecBole's Config reads --key=value from the command line
    start = time.time()
    try:
        result = run(
            spec["model"], spec["dataset"], config_file_list=spec.get("config_files") or None,
            config_dict=spec.get("config_dict") or {},
        )
        if os.path.abspath(result.get("result_file") or "") != os.path.abspath(spec["record"]):
            _remove(result.get("result_file"))  # run()'s own copy; the record holds all of it
        checkpoint = result.get("checkpoint")
        if checkpoint and not spec.get("keep_checkpoint"):
            _remove(checkpoint)
        result = {key: value for key, value in result.items() if key not in LOCAL_RESULT_KEYS}
        if result.get("run_folder"):
            result["run_folder"] = os.path.basename(result["run_folder"])
        result["checkpoint_kept"] = bool(checkpoint and spec.get("keep_checkpoint"))
        record.update(status="ok", result=result)
    except Exception as error:  # recorded, never raised: the benchmark goes on with the next run
        full = traceback.format_exc()
        print(full, file=sys.stderr, flush=True)  # the whole traceback goes to the run's log
        lines = full.rstrip().splitlines()
        record.update(
            status="failed", error=_shorten(f"{type(error).__name__}: {error}".strip(), 600),
            traceback=_shorten(portable_traceback("\n".join(lines[-TRACEBACK_LINES:])), 1500),
        )
    record["wall_seconds"] = round(time.time() - start, 1)
    record["process_seconds"] = round(time.time() - PROCESS_START, 1)
    record["finished"] = utc_now()
    checkpoint_dir = (spec.get("config_dict") or {}).get("checkpoint_dir")
    if checkpoint_dir and not spec.get("keep_checkpoint"):
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    write_json(spec["record"], record)
    return record


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        sys.exit("usage: python -m adrec_recbole.benchmark.worker SPEC.json")
    with open(argv[0], encoding="utf-8") as handle:
        spec = json.load(handle)
    record = run_spec(spec)
    sys.exit(0 if record["status"] == "ok" else 1)


if __name__ == "__main__":
    main()
