"""One benchmark run in its own process: ``python -m adrec_recbole.benchmark.worker SPEC.json``.

The benchmark (:mod:`adrec_recbole.benchmark.compare`) writes a spec file per run and starts
this module in a fresh Python process, so that the peak RSS RecBole's run reports
(``ru_maxrss`` of the process) belongs to that run alone and a crash cannot take the other
runs with it. It can also be started by hand to repeat one run exactly.

Spec keys: ``model``, ``dataset``, ``seed``, ``config_files`` (extra yaml, after the project's
own), ``config_dict`` (RecBole settings, highest priority), ``threads``, ``record`` (the run
JSON to write), ``fingerprint`` and ``settings`` (copied into the record), ``keep_checkpoint``.

The run goes through :func:`adrec_recbole.quick_start.run`, the same path as ``run_recbole.py``.
The record is written atomically: ``status`` ``ok`` with ``result`` (what ``run`` returns), or
``failed`` with ``error`` and the end of the traceback; the exit status is 0 or 1.
"""
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback

from adrec_recbole.benchmark.records import write_json

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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


def _remove(path):
    if path and os.path.isfile(path):
        os.remove(path)


def run_spec(spec):
    """Run one spec in this process and return its record (also written to ``spec['record']``)."""
    threads = int(spec.get("threads") or 1)
    import torch

    torch.set_num_threads(threads)
    from adrec_recbole.quick_start import run
    record = {
        "model": spec["model"], "dataset": spec["dataset"], "seed": spec["seed"],
        "fingerprint": spec.get("fingerprint"), "settings": spec.get("settings"),
        "threads": threads, "pid": os.getpid(), "git_commit": git_commit(), "python": platform.python_version(),
        "torch": torch.__version__, "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    sys.argv = sys.argv[:1]  # RecBole's Config reads --key=value from the command line
    start = time.time()
    try:
        result = run(
            spec["model"], spec["dataset"], config_file_list=spec.get("config_files") or None,
            config_dict=spec.get("config_dict") or {},
        )
        record.update(status="ok", result=result)
        if os.path.abspath(result.get("result_file") or "") != os.path.abspath(spec["record"]):
            _remove(result.get("result_file"))  # run()'s own copy; the record holds all of it
        checkpoint = result.get("checkpoint")
        if checkpoint and not spec.get("keep_checkpoint"):
            _remove(checkpoint)
            result["checkpoint"] = None
    except Exception as error:  # recorded, never raised: the benchmark goes on with the next run
        record.update(
            status="failed", error=f"{type(error).__name__}: {error}".strip()[:2000],
            traceback=traceback.format_exc()[-6000:],
        )
    record["wall_seconds"] = round(time.time() - start, 1)
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
    if record["status"] != "ok":
        print(record.get("traceback") or record["error"], file=sys.stderr)
    sys.exit(0 if record["status"] == "ok" else 1)


if __name__ == "__main__":
    main()
