"""Run records of the benchmark: what identifies a run, its code version, where its record lives.

One run = one ROW (a model, or a labelled variant: a model plus extra yaml files), one dataset,
one seed, one set of settings, one code version. Its record is the small JSON file
``{out}/{dataset}/runs/{label}-seed{seed}-{fingerprint}-{code_version}.json``. Records are
committed (``.gitignore`` keeps only checkpoints, imported data copies, logs and spec files
out), so the tables accumulate across machines and sessions run by run.

Fingerprint (8 hex digits) — everything that decides a run's numbers apart from the code, and
nothing that depends on the machine:

* the row label and its model, the dataset and the seed;
* the DATA by content (:func:`data_identity`: a hash of the dataset's files, not their path);
* ``--epochs`` (a quick look is never reused as, or averaged with, a full run);
* the parsed contents of every yaml file the run reads, in order: the project's
  ``overall.yaml``, ``dataset/{Dataset}.yaml``, ``model/{Model}.yaml`` (the files
  :func:`adrec_recbole.quick_start.config_files_for` picks), the ``--config_files`` given for
  all rows, then the variant's own files. Comments and layout do not count, nor keys that do not
  change what is computed (paths, verbosity, device, the yaml's ``seed``/``data_path``, which the
  benchmark overrides: :data:`IGNORED_KEYS`).

Its seedless twin, the SETTINGS key, groups the seeds of one configuration into one table row;
the PROTOCOL key (dataset, data, ``--epochs``, ``overall.yaml``, ``dataset/{Dataset}.yaml`` and the
``--config_files``, i.e. everything but the model and its own yaml) says which rows may be
compared with each other (the paired difference against SASRec).

Code version — the git commit of the code a row's numbers depend on: the last commit touching
:func:`code_paths` (``git log -1 -- PATHS``, 10 hex digits, the same on every clone), plus
``+dirty-<6 hex>`` (a hash of ``git diff HEAD -- PATHS``) when those paths have uncommitted
changes; ``None`` without git. Per model:

* every model: the RUN PATH (:data:`RUN_PATH`: ``adrec_recbole/__init__.py``, ``quick_start.py``,
  ``run_folder.py``, ``checkpoint.py``, ``safe_load.py``, ``atomic.py``, ``compat.py``,
  ``config_check.py``, ``catalogue.py``, ``cold_start.py``, ``text.py`` (the catalogue reads the
  item file for every model), ``distributed.py``, ``paths.py``, ``lr_schedule.py``, ``data/``,
  ``properties/overall.yaml``,
  ``properties/dataset/``, all under ``adrec_recbole/``) and the model's own ``properties/model/{Model}.yaml``;
* ADRec (a plugin model, :data:`PLUGIN_MODELS`): also the whole package except the tools that do
  not change what a run computes (``adrec_recbole/benchmark/``, ``adrec_recbole/tune/``) and the
  other models' and variants' yaml files in ``adrec_recbole/properties/`` (a variant's files count
  by content, in its fingerprint).

So a change to ``model.py`` makes ADRec's runs stale but not SASRec's, and a change to the run
path makes every model's runs stale. RecBole itself and the other libraries are not part of it
(each record notes python's and torch's versions). The benchmark reuses ("skips") a finished
record only if its code version is the current one (``--reuse_any_code`` keeps finished records
of any code version); records of different code versions are kept side by side and never
averaged together.

This module stays import-light (no torch, no RecBole): the benchmark's parent process must be
small, so that it neither competes with the runs for memory nor inflates what they report.
"""
import hashlib
import json
import os
import re
import subprocess
from pathlib import Path

import yaml

from adrec_recbole.atomic import write_json  # noqa: F401  (re-exported for the benchmark)
from adrec_recbole.paths import PACKAGE_DIR, PROPERTIES_DIR
from adrec_recbole.run_folder import NOT_PART_OF_IDENTITY, is_neutral

PROJECT_ROOT = os.path.dirname(PACKAGE_DIR)

#: record format written by this version (records without it are the earlier, git-ignored kind)
RECORD_FORMAT = 2

#: yaml keys left out of the fingerprint: they change where files go or what is printed, not the
#: numbers (``epochs`` stays in: it decides the run), and the seed and data path the benchmark sets
IGNORED_KEYS = (set(NOT_PART_OF_IDENTITY) - {"epochs"}) | {"seed", "data_path"}

#: the code every model's run goes through (paths relative to the project root)
RUN_PATH = (
    "adrec_recbole/__init__.py", "adrec_recbole/quick_start.py", "adrec_recbole/run_folder.py",
    "adrec_recbole/checkpoint.py", "adrec_recbole/safe_load.py", "adrec_recbole/atomic.py",
    "adrec_recbole/compat.py", "adrec_recbole/config_check.py", "adrec_recbole/catalogue.py",
    "adrec_recbole/cold_start.py", "adrec_recbole/text.py", "adrec_recbole/distributed.py", "adrec_recbole/paths.py",
    "adrec_recbole/lr_schedule.py", "adrec_recbole/data/", "adrec_recbole/properties/overall.yaml", "adrec_recbole/properties/dataset/",
)
#: models implemented in this package: their code version covers the package (less the tools)
PLUGIN_MODELS = ("ADRec",)
#: the package's code a plugin model's numbers depend on: its modules and data/, not benchmark/,
#: tune/ or properties/ (listed, not excluded: git applies an exclude to every pathspec of a
#: command, so ``:(exclude)adrec_recbole/properties/`` would drop overall.yaml and the model's yaml too)
PLUGIN_CODE = (":(glob)adrec_recbole/*.py", "adrec_recbole/data/")

_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


def project_config_files(model, dataset):
    """The project's yaml files that apply to ``model`` on ``dataset``, as ``quick_start`` picks them."""
    return [path for path in _protocol_project_files(dataset) + [os.path.join(PROPERTIES_DIR, "model", f"{model}.yaml")]
            if os.path.isfile(path)]


def _protocol_project_files(dataset):
    candidates = [os.path.join(PROPERTIES_DIR, "overall.yaml"),
                  os.path.join(PROPERTIES_DIR, "dataset", f"{dataset}.yaml")]
    return [path for path in candidates if os.path.isfile(path)]


def _parsed(path):
    """A yaml file's contents for hashing: parsed (comments and layout do not count, nor
    :data:`IGNORED_KEYS`, nor options at their neutral value: ``run_folder.NEUTRAL_SETTINGS``),
    else the raw text."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(data, dict):
        data = {key: value for key, value in data.items() if key not in IGNORED_KEYS and not is_neutral(key, value)}
    return data


def _digest(payload, length):
    blob = json.dumps(payload, sort_keys=True, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:length]


def data_identity(data_root, dataset):
    """12 hex digits identifying the dataset's CONTENT: a hash of the names and bytes of its
    ``{dataset}.*`` files (``.meta.json``, provenance with dates, left out); ``None`` if it has none."""
    folder = Path(data_root) / dataset
    try:
        files = sorted(path for path in folder.iterdir() if path.is_file() and path.name.startswith(f"{dataset}.")
                       and not path.name.endswith(".meta.json"))
    except OSError:
        return None
    if not files:
        return None
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode("utf-8") + b"\0")
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()[:12]


def _payload(label, model, dataset, data_id, config_files, epochs):
    files = project_config_files(model, dataset) + list(config_files)
    return {
        "label": label, "model": model, "dataset": dataset, "data": data_id, "epochs": epochs,
        "config": [_parsed(path) for path in files],
    }


def fingerprint(label, model, dataset, seed, data_id, config_files, epochs):
    """8 hex digits identifying a run's settings (see the module docstring). ``config_files``:
    the extra yaml after the project's own (``--config_files``, then the variant's files)."""
    return _digest(dict(_payload(label, model, dataset, data_id, config_files, epochs), seed=seed), 8)


def settings_key(label, model, dataset, data_id, config_files, epochs):
    """The fingerprint without the seed: the seeds of one table row share it."""
    return _digest(_payload(label, model, dataset, data_id, config_files, epochs), 8)


def protocol_key(dataset, data_id, common_config_files, epochs):
    """8 hex digits: dataset, data, ``--epochs`` and the yaml every row shares; rows with the same
    protocol key are compared with each other."""
    files = _protocol_project_files(dataset) + list(common_config_files)
    return _digest({"dataset": dataset, "data": data_id, "epochs": epochs,
                    "config": [_parsed(path) for path in files]}, 8)


def code_paths(model):
    """Git pathspecs (relative to the project root) of the code ``model``'s numbers depend on."""
    paths = list(RUN_PATH)
    if model in PLUGIN_MODELS:
        paths += PLUGIN_CODE
    return paths + [f"adrec_recbole/properties/model/{model}.yaml"]


def _git(*args):
    done = subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise OSError(done.stderr.strip())
    return done.stdout


def git_version(paths):
    """``<10 hex>`` of the last commit touching ``paths``, ``+dirty-<6 hex>`` if they have
    uncommitted changes; ``None`` outside a git checkout (or if no commit touches them)."""
    try:
        commit = _git("log", "-1", "--format=%H", "--", *paths).strip()
        diff = _git("diff", "HEAD", "--no-ext-diff", "--no-color", "--", *paths)
    except (OSError, subprocess.SubprocessError):
        return None
    if not commit:
        return None
    version = commit[:10]
    if diff:
        version += "+dirty-" + hashlib.sha256(diff.encode("utf-8", "surrogateescape")).hexdigest()[:6]
    return version


def code_version(model):
    """The code version of ``model``'s runs (see the module docstring)."""
    return git_version(code_paths(model))


def run_path_version():
    """The code version of the run path alone (every model shares it)."""
    return git_version(RUN_PATH)


def check_label(label):
    """A row label must be a plain file-name token (it names the record)."""
    if not _LABEL.match(label or "") or "-seed" in label:
        raise ValueError(f"{label!r}: a label is letters, digits and . _ + - (no '-seed'), e.g. ADRec-paper")
    return label


def run_stem(label, seed, fingerprint_, code=None):
    """File name stem of a run: ``{label}-seed{seed}-{fingerprint}-{code}`` (``-nogit`` without git)."""
    return f"{label}-seed{seed}-{fingerprint_}-{code or 'nogit'}"


def relative_path(path):
    """``path`` relative to the project root when it lies inside it (records travel between clones)."""
    absolute = os.path.abspath(path)
    try:
        inside = os.path.commonpath([absolute, PROJECT_ROOT]) == PROJECT_ROOT
    except ValueError:
        inside = False
    return os.path.relpath(absolute, PROJECT_ROOT) if inside else str(path)


def read_json(path):
    """A record, or None if the file is missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def is_record_file(path):
    """A run record's file name (not a spec, a run's own result copy or a temporary)."""
    name = Path(path).name
    return (name.endswith(".json") and not name.startswith(".") and "-seed" in name
            and not name.endswith((".spec.json", ".result.json")))


def load_records(runs_dir):
    """``(records, skipped)``: every run record in ``runs_dir`` of the current format, sorted by
    file name (each with ``_file``: its file name), and the names of files of the earlier format."""
    records, earlier = [], []
    folder = Path(runs_dir)
    if not folder.is_dir():
        return records, earlier
    for path in sorted(folder.iterdir()):
        if not path.is_file() or not is_record_file(path):
            continue
        record = read_json(path)
        if not isinstance(record, dict) or "status" not in record:
            continue
        if record.get("format") != RECORD_FORMAT:
            earlier.append(path.name)
            continue
        record["_file"] = path.name
        records.append(record)
    return records, earlier
