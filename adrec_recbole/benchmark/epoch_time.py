"""Seconds per epoch of whole models on the project's run path, each in a fresh process.

Each model trains one epoch and is tested through :func:`adrec_recbole.quick_start.run` (the path
of ``run_recbole.py``), started as ``python -m adrec_recbole.benchmark.worker SPEC.json`` with the
project's yaml files (properties/overall.yaml, properties/model/<Model>.yaml), ``epochs: 1``, the
given thread count (torch and OMP/MKL/OpenBLAS) and a temporary checkpoint folder removed
afterwards. Reported from the run's result: ``fit_seconds`` (the epoch: training + validation),
``test_eval_seconds``, ``peak_rss_mb`` (the worker process's peak RSS) and the trainable
``parameters``; ``wall_seconds`` is the whole run (data loading and test included).
"""
import os
import subprocess
import sys
import tempfile

from adrec_recbole.benchmark.records import read_json, write_json
from adrec_recbole.benchmark.worker import PROJECT_ROOT

REPORTED = ("fit_seconds", "seconds_per_epoch", "test_eval_seconds", "peak_rss_mb", "parameters", "device")


def measure_epoch(model, dataset, data_path, threads, workdir, seed=2020):
    """One epoch of ``model`` in a worker process; its figures, or ``status: failed`` and the error."""
    record_path = os.path.join(workdir, f"{model}.json")
    spec = {
        "model": model, "dataset": dataset, "seed": seed, "threads": threads, "record": record_path,
        "config_dict": {
            "seed": seed, "epochs": 1, "data_path": os.path.abspath(data_path), "show_progress": False,
            "checkpoint_dir": os.path.join(workdir, f"{model}-checkpoints"),
            "result_file": os.path.join(workdir, f"{model}-result.json"),
        },
    }
    spec_path = os.path.join(workdir, f"{model}.spec.json")
    write_json(spec_path, spec)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [PROJECT_ROOT, env.get("PYTHONPATH")]))
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = str(threads)
    done = subprocess.run([sys.executable, "-m", "adrec_recbole.benchmark.worker", spec_path],
                          capture_output=True, text=True, env=env)
    record = read_json(record_path) or {
        "status": "failed", "error": f"worker exited with status {done.returncode}: {done.stderr[-2000:]}"}
    if record["status"] != "ok":
        return {"status": "failed", "error": record["error"]}
    result = record["result"]
    return {"status": "ok", **{key: result[key] for key in REPORTED}, "wall_seconds": record["wall_seconds"]}


def measure_epochs(models, dataset, data_path, threads):
    """:func:`measure_epoch` for each model, one after the other, in a temporary folder."""
    results = {}
    with tempfile.TemporaryDirectory(prefix="epoch_time-") as workdir:
        for model in models:
            results[model] = measure_epoch(model, dataset, data_path, threads, workdir)
            figures = results[model]
            print(f"epoch time, {model}: " + (f"{figures['fit_seconds']} s (train + validation), peak RSS "
                                              f"{figures['peak_rss_mb']} MB" if figures["status"] == "ok"
                                              else f"FAILED: {figures['error']}"), flush=True)
    return results
