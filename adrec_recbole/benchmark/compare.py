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
at once; while they train, the benchmark prints each one's newest validated epoch, its time and
validation score, at most once a minute (:mod:`adrec_recbole.benchmark.progress`, read from the
run's log). Every run lives in its own folder under ``runs/checkpoints/`` and is started with
``resume: True``, so an interrupted run (Ctrl-C stops every worker; a kill or a crash) continues
from its last finished epoch when the same command runs again. Records are written atomically,
one per run, by the run's worker; a lock file (``runs/benchmark.lock``) stops a second benchmark
from writing the same folder at the same time. The report (:mod:`adrec_recbole.benchmark.report`,
from the records alone) is rewritten after every run.

ITEM TEXT. ADRec reads it itself (:mod:`adrec_recbole.text`), from ``{name}.item`` or from
UniSRec's ``{name}.text`` (keyed by ASIN) + ``{name}.item2index``. RecBole's feature models
(FDSA) can only read ``{name}.item`` columns as ``token_seq`` features. So that every model
reads the same text, a dataset folder in UniSRec's layout (no ``.item``) is converted once
(:func:`adrec_recbole.benchmark.planning.resolve_data_root`) with the project's own importer
(``python -m adrec_recbole.data import --format unisrec``, i.e.
:func:`adrec_recbole.data.importers.import_unisrec`) into ``{out}/{dataset}/runs/data/`` (not
committed; rebuilt on each machine, and identified by content, so records still match) and ALL
models of the benchmark run on that copy: the ``.inter`` files byte for byte, and the ``.item``
file holding each item's UniSRec text (HTML entities decoded, whitespace collapsed) as its
title. A folder already in the canonical layout is used as it is.

MODULES. This one holds the loop (:func:`run_benchmark`: check the settings, plan, skip or start
each run, say how the running ones progress, collect the ended ones, rewrite the report) and what
it logs. The rest is in
:mod:`adrec_recbole.benchmark.planning` (settings, data root, planned runs),
:mod:`adrec_recbole.benchmark.reuse` (finished records and interrupted checkpoints a run takes
over), :mod:`adrec_recbole.benchmark.runner` (worker processes, the folder's lock),
:mod:`adrec_recbole.benchmark.worker` (one run in its process),
:mod:`adrec_recbole.benchmark.progress` (a running run's epochs, from its log),
:mod:`adrec_recbole.benchmark.records` (a run's identity and record), and
:mod:`adrec_recbole.benchmark.report` with :mod:`adrec_recbole.benchmark.tables` (the report).
"""
import time
from pathlib import Path

from adrec_recbole.benchmark import carry, report
from adrec_recbole.benchmark.planning import (
    DEFAULT_MODELS, BenchmarkError, PlannedRun, Settings, check_settings, ensure_data, parse_seeds, parse_variants,
    plan, resolve_data_root, user_yaml,
)
from adrec_recbole.benchmark.progress import RunProgress
from adrec_recbole.benchmark.records import code_version, read_json
from adrec_recbole.benchmark.reuse import adopt_equivalent_checkpoints, finished
from adrec_recbole.benchmark.runner import RunsLock, finish, start, stop

# the benchmark's interface, importable from here (``__main__``, the tests) wherever it is defined
__all__ = [
    "DEFAULT_MODELS", "BenchmarkError", "PlannedRun", "Settings", "adopt_equivalent_checkpoints", "parse_seeds",
    "parse_variants", "plan", "run_benchmark", "user_yaml",
]

POLL_SECONDS = 0.2


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


def run_benchmark(settings, log=print):
    """Run (or resume) the benchmark and write the report; return the planned runs' records."""
    with RunsLock(settings.runs_dir):
        return _run_benchmark(settings, log)


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
    queue, active, progress = list(runs), [], {}

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
            carried = None if settings.force else carry.restore(planned)
            if carried:
                log(f"{prefix(planned)}: restored from its carried copy (code {carried}) to resume from")
            adopted = None if settings.force else adopt_equivalent_checkpoints(planned)
            if adopted:
                log(f"{prefix(planned)}: continues the interrupted run of code {adopted} (verified equivalent)")
            log(f"{prefix(planned)}: running (log: {settings.runs_dir / (planned.stem + '.log')})")
            running = start(settings, planned, data_root)
            active.append(running)
            progress[running.log_path] = RunProgress(running.log_path)
            return True
        return False

    try:
        while True:
            while len(active) < settings.jobs and launch_next():
                pass
            if not active:
                break
            ended = [running for running in active if running.process.poll() is not None]
            for running in active:  # the ended ones too: their last epoch comes before their result
                if line := progress[running.log_path].line():
                    log(f"{prefix(running.planned)}: {line}")
            if not ended:
                time.sleep(POLL_SECONDS)
                continue
            for running in ended:
                active.remove(running)
                del progress[running.log_path]
                record = finish(settings, running)
                took = _clock(time.time() - running.start)
                if record.get("status") == "ok":
                    counts["done"] += 1
                    log(f"{prefix(running.planned)}: ok in {took}: {_headline(record)}")
                    for stem in carry.drop_finished(settings.folder):
                        log(f"{prefix(running.planned)}: finished, so its carried checkpoint {stem} is removed")
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
