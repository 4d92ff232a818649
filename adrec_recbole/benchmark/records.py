"""Run records of the benchmark: where they live, what identifies a run, atomic JSON writes.

One run = one model, one dataset, one seed under one set of settings. Its record is
``{out}/{dataset}/runs/{model}-seed{seed}-{fingerprint}.json``; the fingerprint is a short hash
of everything that decides the run's numbers apart from the code: model, dataset, seed, data
folder, ``--epochs`` and the parsed contents of every yaml file the run reads (the project's
``overall.yaml``, ``dataset/{Dataset}.yaml``, ``model/{Model}.yaml`` — the files
:func:`adrec_recbole.quick_start.config_files_for` picks — then the extra files). Editing a
model's yaml, or a quick ``--epochs 1`` look, therefore makes new runs beside the old records
instead of reusing or overwriting them. Code changes are not part of it: each record notes the
git commit; pass ``--force`` to run again after changing code.

This module stays import-light (no torch, no RecBole): the benchmark's parent process must be
small, so that it neither competes with the runs for memory nor inflates what they report.
"""
import hashlib
import json
import os

import yaml

from adrec_recbole.atomic import write_json  # noqa: F401  (re-exported for the benchmark)

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROPERTIES_DIR = os.path.join(PROJECT_ROOT, "properties")


def project_config_files(model, dataset):
    """The project's yaml files that apply to ``model`` on ``dataset``, as ``quick_start`` picks them."""
    candidates = [
        os.path.join(PROPERTIES_DIR, "overall.yaml"),
        os.path.join(PROPERTIES_DIR, "dataset", f"{dataset}.yaml"),
        os.path.join(PROPERTIES_DIR, "model", f"{model}.yaml"),
    ]
    return [path for path in candidates if os.path.isfile(path)]


def _parsed(path):
    """A yaml file's contents for hashing: parsed (comments and layout do not count), else raw text."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def fingerprint(model, dataset, seed, data_root, extra_config_files, epochs):
    """8 hex digits identifying a run's settings (see the module docstring)."""
    files = project_config_files(model, dataset) + list(extra_config_files)
    payload = {
        "model": model, "dataset": dataset, "seed": seed, "data": os.path.abspath(data_root), "epochs": epochs,
        "config": [_parsed(path) for path in files],
    }
    blob = json.dumps(payload, sort_keys=True, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:8]


def run_stem(model, seed, fingerprint_):
    """File name stem of a run: ``{model}-seed{seed}-{fingerprint}``."""
    return f"{model}-seed{seed}-{fingerprint_}"


def read_json(path):
    """A record, or None if the file is missing or unreadable (e.g. written by an older version)."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None
