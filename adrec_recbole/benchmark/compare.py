"""ADRec side by side with RecBole's models: every row, every seed, one process per run.

ROWS. A row is a model (``ADRec``, ``SASRec``, ...) or a labelled VARIANT: a model plus extra
yaml files, shown and averaged as its own row (``--variant ADRec-paper=ADRec:properties/ADRec-paper.yaml``).
Every run reads the project's yaml (``properties/overall.yaml``, ``properties/model/<Model>.yaml``),
then the ``--config_files`` (all rows), then the variant's own files (later files win); the
benchmark sets ``seed``, ``data_path``, ``checkpoint_dir`` and ``--epochs`` above all of them.

RUNS AND RECORDS. :func:`run_benchmark` plans ``rows x seeds`` (seed-major: every row's first
seed before any row's second, so an interrupted benchmark already compares all rows). Each run's
record is a small JSON file, ``runs/{label}-seed{seed}-{fingerprint}-{code_version}.json``
(:mod:`adrec_recbole.benchmark.records`: the fingerprint covers the settings and the data's
content, the code version the git commit of the code that row depends on). Records are committed
to git, so the tables accumulate across machines and sessions: a run whose record says ``ok``
for the same settings AND the current code version is skipped — on any machine, since neither
depends on paths — and after a code change the affected rows are run again, beside the old
records (never averaged with them). ``--reuse_any_code`` keeps finished records of any code
version instead; ``--force`` runs everything again. A failed run is tried again by the next
invocation; its failed record is removed once a run of the same settings finishes.

PROCESSES. Each remaining run starts as ``python -m adrec_recbole.benchmark.worker SPEC.json``, a
fresh process (the peak RSS is that run's, and a crash is recorded as that run's failure while
the others go on), with ``--threads`` torch/OpenMP threads; ``--jobs N`` keeps N of them running
at once. Every run lives in its own folder under ``runs/checkpoints/`` and is started with
``resume: True``, so an interrupted run (Ctrl-C stops every worker; a kill or a crash) continues
from its last finished epoch when the same command runs again. Records are written atomically,
one per run, by the run's worker; a lock file (``runs/benchmark.lock``) stops a second benchmark
from writing the same folder at the same time. The report (:mod:`adrec_recbole.benchmark.report`,
from the records alone) is rewritten after every run.

ITEM TEXT. ADRec reads it itself (:mod:`adrec_recbole.text`), from ``{name}.item`` or from
UniSRec's ``{name}.text`` (keyed by ASIN) + ``{name}.item2index``. RecBole's feature models
(FDSA) can only read ``{name}.item`` columns as ``token_seq`` features. So that every model
reads the same text, a dataset folder in UniSRec's layout (no ``.item``) is converted once with
the project's own importer (``python -m adrec_recbole.data import --format unisrec``, i.e.
:func:`adrec_recbole.data.importers.import_unisrec`) into ``{out}/{dataset}/runs/data/`` (not
committed; rebuilt on each machine, and identified by content, so records still match) and ALL
models of the benchmark run on that copy: the ``.inter`` files byte for byte, and the ``.item``
file holding each item's UniSRec text (HTML entities decoded, whitespace collapsed) as its
title. A folder already in the canonical layout is used as it is.
"""
import glob
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from adrec_recbole.atomic import process_running
from adrec_recbole.paths import resolve_user_file
from adrec_recbole.benchmark import report
from adrec_recbole.benchmark.equivalence import equivalent_versions, load_equivalences
from adrec_recbole.benchmark.records import (
    RECORD_FORMAT, check_label, code_version, data_identity, fingerprint, protocol_key, read_json, relative_path,
    run_path_version, run_stem, settings_key, write_json,
)
from adrec_recbole.benchmark.worker import utc_now

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_MODELS = ("ADRec", "SASRec", "GRU4Rec", "BERT4Rec", "FDSA", "Pop")
FIRST_SEED = 2020  # overall.yaml's seed: --seeds 3 means 2020, 2021, 2022
POLL_SECONDS = 0.2


class BenchmarkError(Exception):
    """A problem with the benchmark's input, reported as one line."""


def parse_seeds(text):
    """``'3'`` -> ``[2020, 2021, 2022]``; ``'2020,2025'`` -> ``[2020, 2025]``."""
    parts = [part.strip() for part in str(text).split(",") if part.strip()]
    try:
        numbers = [int(part) for part in parts]
    except ValueError:
        raise BenchmarkError(f"--seeds {text!r}: give a count (3) or a comma-separated list (2020,2021)") from None
    if len(numbers) == 1 and 0 < numbers[0] < 1000:
        return [FIRST_SEED + offset for offset in range(numbers[0])]
    if not numbers or len(set(numbers)) != len(numbers):
        raise BenchmarkError(f"--seeds {text!r}: give a count (3) or distinct seeds (2020,2021)")
    return numbers


@dataclass
class Variant:
    """A labelled row: ``model`` run with the extra yaml ``config_files`` (after the common ones)."""

    label: str
    model: str
    config_files: list


def user_yaml(path):
    """A yaml file named on the command line: in the working directory, else the package's copy
    (``properties/ADRec-paper.yaml`` from any folder); unchanged when neither exists (reported by
    the settings check)."""
    return resolve_user_file(path) or path


def parse_variants(values):
    """``['LABEL=MODEL:A.yaml,B.yaml', ...]`` (several per value may be separated by ``;``) ->
    ``{label: Variant}`` in the order given."""
    variants = {}
    for value in values:
        for text in (part.strip() for part in str(value).split(";")):
            if not text:
                continue
            label, equals, rest = text.partition("=")
            model, colon, files = rest.partition(":")
            label, model = label.strip(), model.strip()
            config_files = [user_yaml(path) for path in files.replace(",", " ").split() if path]
            if not equals or not colon or not label or not model or not config_files:
                raise BenchmarkError(f"--variant {text!r}: write LABEL=MODEL:FILE.yaml[,FILE.yaml...], "
                                     "e.g. ADRec-paper=ADRec:properties/ADRec-paper.yaml")
            try:
                check_label(label)
            except ValueError as error:
                raise BenchmarkError(f"--variant {text!r}: {error}") from None
            if label == model or label in DEFAULT_MODELS:
                raise BenchmarkError(f"--variant {text!r}: the label must differ from model names (e.g. {model}-paper)")
            if label in variants:
                raise BenchmarkError(f"--variant {label!r} is defined twice")
            variants[label] = Variant(label, model, config_files)
    return variants


@dataclass
class Settings:
    """Everything one benchmark invocation needs (the command line's options).

    ``models``: the rows, model names or labels of ``variants``; labels of ``variants`` that
    ``models`` does not name are appended (:meth:`rows`).
    """

    dataset: str
    models: list = field(default_factory=lambda: list(DEFAULT_MODELS))
    seeds: list = field(default_factory=lambda: [2020, 2021, 2022])
    out: str = "results/"
    data_path: str = "dataset/"
    config_files: list = field(default_factory=list)
    epochs: int = None
    threads: int = 1
    force: bool = False
    keep_checkpoints: bool = False
    command: str = ""
    variants: dict = field(default_factory=dict)
    jobs: int = 1
    reuse_any_code: bool = False

    @property
    def folder(self):
        return Path(self.out) / self.dataset

    @property
    def runs_dir(self):
        return self.folder / "runs"

    def rows(self):
        """``[(label, model, variant config files)]``: ``models`` in order, then unnamed variants."""
        labels = list(self.models) + [label for label in self.variants if label not in self.models]
        rows = []
        for label in labels:
            variant = self.variants.get(label)
            rows.append((label, variant.model, list(variant.config_files)) if variant else (label, label, []))
        return rows


@dataclass
class PlannedRun:
    index: int
    label: str
    model: str
    seed: int
    fingerprint: str
    record_path: Path
    settings_key: str = ""
    protocol: str = ""
    code_version: str = None
    run_path_version: str = None
    variant_files: list = field(default_factory=list)
    data_id: str = None

    @property
    def stem(self):
        return self.record_path.stem

    @property
    def prefix(self):
        """The record file name up to the code version: same row, seed and settings."""
        return self.stem[: len(self.stem) - len(self.code_version or "nogit") - 1]


def _unisrec_layout(folder, name):
    needed = [f"{name}.{split}.inter" for split in ("train", "valid", "test")]
    needed += [f"{name}.text", f"{name}.item2index", f"{name}.user2index"]
    return not (folder / f"{name}.item").is_file() and all((folder / file).is_file() for file in needed)


def resolve_data_root(settings, log=print):
    """The data root all runs use: ``--data_path``, or the canonical copy of a UniSRec-layout folder."""
    source = Path(settings.data_path) / settings.dataset
    if not _unisrec_layout(source, settings.dataset):
        return Path(settings.data_path)
    from adrec_recbole.data.importers import import_unisrec
    from adrec_recbole.data.layout import missing_files

    root = settings.runs_dir / "data"
    if (root / settings.dataset).is_dir() and not missing_files(root / settings.dataset, settings.dataset):
        log(f"{source} is in UniSRec's layout; using its canonical copy in {root / settings.dataset}")
        return root
    log(
        f"{source} is in UniSRec's layout (.text keyed by ASIN, no .item): importing it once into "
        f"{root / settings.dataset} so that every model, ADRec and FDSA alike, reads the same item text"
    )
    try:
        import_unisrec(source, settings.dataset, root, force=True)
    except Exception as error:  # DataFormatError and friends: one line, no stack trace
        raise BenchmarkError(f"could not import {source}: {error}") from None
    return root


def ensure_data(settings, data_root):
    """Make sure ``{data_root}/{dataset}`` is complete (downloading a known Amazon category, as a run
    would) before the runs are planned: the fingerprint hashes the data's content."""
    from adrec_recbole.data import DataFormatError, DatasetNotFoundError, ensure_dataset
    from adrec_recbole.data.ensure import is_default_data_path
    from adrec_recbole.data.layout import missing_files

    if not missing_files(Path(data_root) / settings.dataset, settings.dataset):
        return
    try:
        ensure_dataset(settings.dataset, str(data_root), create_root=is_default_data_path(str(data_root)))
    except (DatasetNotFoundError, DataFormatError) as error:
        raise BenchmarkError(str(error)) from None


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


def plan(settings, data_root):
    """``PlannedRun`` for every (seed, row), seed-major."""
    data_id = data_identity(data_root, settings.dataset)
    protocol = protocol_key(settings.dataset, data_id, settings.config_files, settings.epochs)
    versions, shared = {}, run_path_version()
    runs, index = [], 0
    for seed in settings.seeds:
        for label, model, variant_files in settings.rows():
            index += 1
            if model not in versions:
                versions[model] = code_version(model)
            extra = list(settings.config_files) + list(variant_files)
            key = fingerprint(label, model, settings.dataset, seed, data_id, extra, settings.epochs)
            stem = run_stem(label, seed, key, versions[model])
            runs.append(PlannedRun(
                index, label, model, seed, key, settings.runs_dir / f"{stem}.json",
                settings_key=settings_key(label, model, settings.dataset, data_id, extra, settings.epochs),
                protocol=protocol, code_version=versions[model], run_path_version=shared,
                variant_files=list(variant_files), data_id=data_id,
            ))
    return runs


def _same_settings(planned):
    """Records of the planned run's row, seed and settings, any code version: ``[(path, record)]``."""
    found = []
    pattern = os.path.join(glob.escape(str(planned.record_path.parent)), glob.escape(planned.prefix) + "-*.json")
    for path in glob.glob(pattern):
        if path.endswith((".spec.json", ".result.json")):
            continue
        record = read_json(path)
        if record and record.get("fingerprint") == planned.fingerprint:
            found.append((Path(path), record))
    return found


def finished(planned, reuse_any_code=False):
    """The record to reuse for this run, or None: its own if it finished (same code version), else
    the newest finished record of the same settings whose code version was verified equivalent
    (:mod:`adrec_recbole.benchmark.equivalence`); with ``reuse_any_code``, of any code version."""
    record = read_json(planned.record_path)
    if record and record.get("status") == "ok" and record.get("format") == RECORD_FORMAT:
        return record
    out_root = planned.record_path.parents[2]  # OUT/DATASET/runs/RECORD
    equivalents = equivalent_versions(load_equivalences(out_root), planned.model, planned.code_version)
    done = [record for _, record in _same_settings(planned)
            if record.get("status") == "ok" and record.get("format") == RECORD_FORMAT
            and (reuse_any_code or record.get("code_version") in equivalents)]
    return max(done, key=lambda record: record.get("finished") or "", default=None)


def adopt_equivalent_checkpoints(planned):
    """Let an interrupted run of a verified-equivalent code version continue under this one: its
    checkpoint folder (``runs/checkpoints/{label}-seed{seed}-{fingerprint}-{version}``) is renamed
    to this run's, so that the worker resumes it. The version adopted, or None."""
    folder = planned.record_path.parent / "checkpoints"
    target = folder / planned.stem
    if target.exists():
        return None
    equivalents = equivalent_versions(load_equivalences(planned.record_path.parents[2]), planned.model,
                                      planned.code_version) - {planned.code_version}
    for version in sorted(equivalents):
        source = folder / f"{planned.prefix}-{version}"
        if source.is_dir():
            source.rename(target)
            return version
    return None


def _clock(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _headline(record):
    result = record.get("result") or {}
    test = result.get("test_result") or {}
    metric = next((key for key in ("ndcg@10", "recall@10") if key in test), next(iter(test), None))
    parts = [f"test {metric}={test[metric]:.4f}" if metric else "no test result"]
    if result.get("best_epoch") is not None:
        parts.append(f"best epoch {result['best_epoch']}")
    if result.get("seconds_per_epoch") is not None:
        parts.append(f"{result['seconds_per_epoch']} s/epoch")
    if result.get("peak_rss_mb") is not None:
        parts.append(f"peak {result['peak_rss_mb']:,.0f} MB")
    if result.get("resumed_at_epoch") is not None:
        parts.append(f"resumed at epoch {result['resumed_at_epoch']}")
    return ", ".join(parts)


def _log_tail(path, lines=15):
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return "".join(handle.readlines()[-lines:])
    except OSError:
        return ""


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
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [PROJECT_ROOT, env.get("PYTHONPATH")]))
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = str(settings.threads)
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
        for path, other in _same_settings(planned):
            if path != planned.record_path and other.get("status") == "failed":
                path.unlink(missing_ok=True)
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


def run_benchmark(settings, log=print):
    """Run (or resume) the benchmark and write the report; return the planned runs' records."""
    with RunsLock(settings.runs_dir):
        return _run_benchmark(settings, log)


def check_settings(settings):
    if not settings.rows():
        raise BenchmarkError("--models is empty")
    labels = [label for label, _, _ in settings.rows()]
    if len(set(labels)) != len(labels):
        raise BenchmarkError(f"--models {','.join(settings.models)!r} names a row twice")
    for label in labels:
        try:
            check_label(label)
        except ValueError as error:
            raise BenchmarkError(f"--models: {error}") from None
    variant_files = [path for variant in settings.variants.values() for path in variant.config_files]
    for path in list(settings.config_files) + variant_files:
        if not Path(path).is_file():
            raise BenchmarkError(f"config file not found: {path}")
    if settings.threads < 1:
        raise BenchmarkError("--threads must be at least 1")
    if settings.jobs < 1:
        raise BenchmarkError("--jobs must be at least 1")


def _announce_code(runs, log):
    versions = {}
    for planned in runs:
        versions.setdefault(planned.model, planned.code_version)
    if any(version is None for version in versions.values()):
        log("warning: not a git checkout, so code versions are unknown ('nogit'): records made without git are "
            "reused as if the code had not changed")
    log("code versions: " + ", ".join(f"{model} {version or 'nogit'}" for model, version in versions.items()))
    dirty = sorted(model for model, version in versions.items() if version and "+dirty" in version)
    if dirty:
        log(f"warning: uncommitted changes in the code of {', '.join(dirty)}: their records carry a '+dirty-' code "
            "version that no commit reproduces; commit first for records others can build on")


def _run_benchmark(settings, log):
    check_settings(settings)
    settings.runs_dir.mkdir(parents=True, exist_ok=True)
    data_root = resolve_data_root(settings, log)
    ensure_data(settings, data_root)
    runs = plan(settings, data_root)
    if runs and runs[0].data_id is None:
        raise BenchmarkError(f"no data files in {Path(data_root) / settings.dataset}")
    total, begin = len(runs), time.time()
    counts = {"done": 0, "skipped": 0, "failed": 0}
    log(f"benchmark {settings.dataset}: {len(settings.rows())} rows x {len(settings.seeds)} seeds = "
        f"{total} runs, {settings.jobs} at a time with {settings.threads} thread(s) each -> {settings.folder}")
    _announce_code(runs, log)
    queue, active = list(runs), []

    def prefix(planned):
        return f"[{planned.index}/{total} | {_clock(time.time() - begin)}] {planned.label} seed {planned.seed}"

    def launch_next():
        while queue:
            planned = queue.pop(0)
            record = None if settings.force else finished(planned, settings.reuse_any_code)
            if record is not None:
                counts["skipped"] += 1
                why = "--reuse_any_code" if settings.reuse_any_code else "verified equivalent"
                other = "" if record.get("code_version") == planned.code_version else \
                    f" with code {record.get('code_version')} ({why})"
                log(f"{prefix(planned)}: finished before{other}, skipped ({_headline(record)})")
                continue
            now = code_version(planned.model)
            if now != planned.code_version:  # a commit or an edit since planning: the label would lie
                log(f"{prefix(planned)}: not started: the code of {planned.model} changed since the benchmark "
                    f"started ({planned.code_version} -> {now}); run the same command again")
                queue.clear()
                return False
            adopted = None if settings.force else adopt_equivalent_checkpoints(planned)
            if adopted:
                log(f"{prefix(planned)}: continues the interrupted run of code {adopted} (verified equivalent)")
            log(f"{prefix(planned)}: running (log: {settings.runs_dir / (planned.stem + '.log')})")
            active.append(start(settings, planned, data_root))
            return True
        return False

    try:
        while True:
            while len(active) < settings.jobs and launch_next():
                pass
            if not active:
                break
            ended = [running for running in active if running.process.poll() is not None]
            if not ended:
                time.sleep(POLL_SECONDS)
                continue
            for running in ended:
                active.remove(running)
                record = finish(settings, running)
                took = _clock(time.time() - running.start)
                if record.get("status") == "ok":
                    counts["done"] += 1
                    log(f"{prefix(running.planned)}: ok in {took}: {_headline(record)}")
                else:
                    counts["failed"] += 1
                    log(f"{prefix(running.planned)}: FAILED in {took}: {record.get('error')}")
            report.write_report(settings.folder, settings.dataset)
    except KeyboardInterrupt:
        stop(active)
        log(f"interrupted after {_clock(time.time() - begin)}; finished runs are kept and interrupted ones resume "
            "from their last epoch: run the same command again")
        report.write_report(settings.folder, settings.dataset)
        raise
    paths = report.write_report(settings.folder, settings.dataset)
    log(f"done in {_clock(time.time() - begin)}: {counts['done']} run, {counts['skipped']} skipped, "
        f"{counts['failed']} failed; report: {paths['markdown']}")
    return [finished(planned, settings.reuse_any_code) or read_json(planned.record_path) for planned in runs]
