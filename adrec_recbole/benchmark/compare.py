"""ADRec side by side with RecBole's models: every model, every seed, one process per run.

:func:`run_benchmark` plans ``models x seeds`` (seed-major: every model's first seed before
any model's second, so an interrupted benchmark already compares all models), skips runs whose
record says ``ok`` for the same settings, starts each remaining run as
``python -m adrec_recbole.benchmark.worker SPEC.json`` (a fresh process: the peak RSS is that
run's, and a crash is recorded as that run's failure while the others go on) and rewrites the
report (:mod:`adrec_recbole.benchmark.report`) after every run. A lock file
(``runs/benchmark.lock``) stops a second benchmark from writing the same folder at the same time.
A run that failed is tried again by the next invocation; one that finished is not (``--force``).

Item text. ADRec reads it itself (:mod:`adrec_recbole.text`), from ``{name}.item`` or from
UniSRec's ``{name}.text`` (keyed by ASIN) + ``{name}.item2index``. RecBole's feature models
(FDSA) can only read ``{name}.item`` columns as ``token_seq`` features. So that every model
reads the same text, a dataset folder in UniSRec's layout (no ``.item``) is converted once with
the project's own importer (``python -m adrec_recbole.data import --format unisrec``, i.e.
:func:`adrec_recbole.data.importers.import_unisrec`) into ``{out}/{dataset}/runs/data/`` and
ALL models of the benchmark run on that copy: the ``.inter`` files byte for byte, and the
``.item`` file holding each item's UniSRec text (HTML entities decoded, whitespace collapsed)
as its title. A folder already in the canonical layout is used as it is.
"""
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from adrec_recbole.atomic import process_running
from adrec_recbole.benchmark import report
from adrec_recbole.benchmark.records import fingerprint, read_json, run_stem, write_json

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_MODELS = ("ADRec", "SASRec", "GRU4Rec", "BERT4Rec", "FDSA", "Pop")
FIRST_SEED = 2020  # overall.yaml's seed: --seeds 3 means 2020, 2021, 2022


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
class Settings:
    """Everything one benchmark invocation needs (the command line's options)."""

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

    @property
    def folder(self):
        return Path(self.out) / self.dataset

    @property
    def runs_dir(self):
        return self.folder / "runs"


@dataclass
class PlannedRun:
    index: int
    model: str
    seed: int
    fingerprint: str
    record_path: Path

    @property
    def stem(self):
        return self.record_path.stem


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


def plan(settings, data_root):
    """``PlannedRun`` for every (seed, model), seed-major."""
    runs, index = [], 0
    for seed in settings.seeds:
        for model in settings.models:
            index += 1
            key = fingerprint(model, settings.dataset, seed, data_root, settings.config_files, settings.epochs)
            runs.append(PlannedRun(index, model, seed, key, settings.runs_dir / f"{run_stem(model, seed, key)}.json"))
    return runs


def finished(planned):
    """The run's record if it finished successfully, else None."""
    record = read_json(planned.record_path)
    return record if record and record.get("status") == "ok" else None


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
    return ", ".join(parts)


def _log_tail(path, lines=15):
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return "".join(handle.readlines()[-lines:])
    except OSError:
        return ""


def execute(settings, planned, data_root):
    """Run one planned run in a fresh worker process; return its record (written in any case)."""
    stem = planned.stem
    runs_dir = settings.runs_dir
    config_dict = {
        "seed": planned.seed,
        "data_path": str(Path(data_root).resolve()),
        "checkpoint_dir": str((runs_dir / "checkpoints" / stem).resolve()),
        "result_file": str((runs_dir / f"{stem}.result.json").resolve()),
        "show_progress": False,
        "resume": not settings.force,  # an interrupted run continues from its last epoch
    }
    if settings.epochs is not None:
        config_dict["epochs"] = settings.epochs
    spec = {
        "model": planned.model, "dataset": settings.dataset, "seed": planned.seed,
        "config_files": [str(Path(path).resolve()) for path in settings.config_files],
        "config_dict": config_dict, "threads": settings.threads,
        "record": str(planned.record_path.resolve()), "fingerprint": planned.fingerprint,
        "settings": {"epochs": settings.epochs, "config_files": list(settings.config_files),
                     "data_path": str(data_root), "command": settings.command},
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
    start = time.time()
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "adrec_recbole.benchmark.worker", str(spec_path)],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )
        try:
            returncode = process.wait()
        except KeyboardInterrupt:
            process.terminate()  # the worker got the same Ctrl-C; make sure it is gone
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
            raise
    record = read_json(planned.record_path)
    if record is None:  # killed (out of memory?) or died before it could write
        record = {
            "model": planned.model, "dataset": settings.dataset, "seed": planned.seed,
            "fingerprint": planned.fingerprint, "settings": spec["settings"], "status": "failed",
            "error": f"worker exited with status {returncode} without a record "
                     f"(killed, e.g. out of memory, or crashed); end of {log_path.name}: "
                     + " | ".join(_log_tail(log_path, 5).split("\n")).strip(" |"),
            "wall_seconds": round(time.time() - start, 1),
        }
        write_json(planned.record_path, record)
    record.setdefault("log", str(log_path))
    return record


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
    """Run (or resume) the benchmark and write the report; return the list of records."""
    with RunsLock(settings.runs_dir):
        return _run_benchmark(settings, log)


def _run_benchmark(settings, log):
    if not settings.models:
        raise BenchmarkError("--models is empty")
    for path in settings.config_files:
        if not Path(path).is_file():
            raise BenchmarkError(f"config file not found: {path}")
    if settings.threads < 1:
        raise BenchmarkError("--threads must be at least 1")
    settings.runs_dir.mkdir(parents=True, exist_ok=True)
    data_root = resolve_data_root(settings, log)
    runs = plan(settings, data_root)
    total, start = len(runs), time.time()
    done = skipped = failed = 0
    log(f"benchmark {settings.dataset}: {len(settings.models)} models x {len(settings.seeds)} seeds = "
        f"{total} runs -> {settings.folder}")
    try:
        for planned in runs:
            prefix = f"[{planned.index}/{total} | {_clock(time.time() - start)}] {planned.model} seed {planned.seed}"
            record = None if settings.force else finished(planned)
            if record is not None:
                skipped += 1
                log(f"{prefix}: finished before, skipped ({_headline(record)})")
                continue
            log(f"{prefix}: running (log: {settings.runs_dir / (planned.stem + '.log')})")
            run_start = time.time()
            record = execute(settings, planned, data_root)
            took = _clock(time.time() - run_start)
            if record.get("status") == "ok":
                done += 1
                log(f"{prefix}: ok in {took}: {_headline(record)}")
            else:
                failed += 1
                log(f"{prefix}: FAILED in {took}: {record.get('error')}")
            report.write_report(settings, runs, data_root)
    except KeyboardInterrupt:
        log(f"interrupted after {_clock(time.time() - start)}; finished runs are kept, run the same command to resume")
        report.write_report(settings, runs, data_root)
        raise
    paths = report.write_report(settings, runs, data_root)
    log(f"done in {_clock(time.time() - start)}: {done} run, {skipped} skipped, {failed} failed; "
        f"report: {paths['markdown']}")
    return [read_json(planned.record_path) for planned in runs]
