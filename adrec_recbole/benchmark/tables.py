"""The report's tables, computed from the run records alone (no rendering, no files but CSV).

:func:`run_rows` makes one row per record; :func:`group_entries` groups them into the table's
lines (row label, code version, settings key) in report order; :func:`summary_rows`,
:func:`paired_rows` and :func:`cost_rows` give the per-line means and stds, the paired
differences against SASRec (:func:`reference_for`, :func:`paired_difference`) and the cost;
:func:`write_csv` writes any of them. What a line is, how a line is paired with SASRec and what
the cost counts is written in :mod:`adrec_recbole.benchmark.report`, which renders these tables.
"""
import csv
import math
import statistics

from adrec_recbole.atomic import _replace_with
from adrec_recbole.benchmark import cold_start

REFERENCE = "SASRec"
MODEL_ORDER = ("ADRec", "SASRec", "GRU4Rec", "BERT4Rec", "FDSA", "Pop")
METRIC_ORDER = ("recall", "ndcg", "mrr", "hit", "precision", "map")
COST_COLUMNS = ("best_epoch", "epochs_run", "seconds_per_epoch", "fit_seconds", "test_eval_seconds",
                "peak_rss_mb", "parameters")


def metric_sort_key(name):
    """``recall@10`` < ``ndcg@10`` < ``mrr@10`` < ``recall@50`` ... (cut-off first, then family)."""
    family, _, cutoff = name.partition("@")
    rank = METRIC_ORDER.index(family) if family in METRIC_ORDER else len(METRIC_ORDER)
    return (int(cutoff) if cutoff.isdigit() else 10 ** 6, rank, family)


def code_of(record):
    return record.get("code_version") or "nogit"


def on_gpu(record):
    """Whether the run trained on a GPU (its result's device is not the CPU)."""
    return str((record.get("result") or {}).get("device") or "cpu").split(":")[0] != "cpu"


def _run_hours(record):
    result = record.get("result") or {}
    if record.get("status") != "ok":
        return 0.0
    return ((result.get("fit_seconds") or 0.0) + (result.get("test_eval_seconds") or 0.0)) / 3600


def cpu_hours(record):
    """(fit + test evaluation seconds) x threads of a finished run on the CPU, in hours; 0 for a
    failed run or one on a GPU (counted by :func:`gpu_hours`)."""
    return 0.0 if on_gpu(record) else _run_hours(record) * int(record.get("threads") or 1)


def gpu_hours(record):
    """(fit + test evaluation seconds) of a finished run on a GPU, in hours (one GPU per run, which
    other runs may have shared); 0 for a failed run or one on the CPU."""
    return _run_hours(record) if on_gpu(record) else 0.0


def device_of(record):
    """``cpu (AVX512)`` (ATen's instruction set, which the numbers depend on: ``adrec_recbole/arithmetic.py``;
    plain ``cpu`` in records made before it was recorded), or ``cuda (NVIDIA H200)`` when the record
    names the GPU."""
    machine = record.get("machine") or {}
    if not on_gpu(record):
        return f"cpu ({machine['cpu_capability']})" if machine.get("cpu_capability") else "cpu"
    name = machine.get("gpu")
    return f"cuda ({name})" if name else "cuda"


def run_rows(records):
    """One dict per record (any order; :func:`group_entries` orders them)."""
    rows = []
    for record in records:
        result = record.get("result") or {}
        row = {
            "label": record.get("label") or record.get("model"), "model": record.get("model"),
            "seed": record.get("seed"), "status": record.get("status"), "code_version": code_of(record),
            "settings_key": record.get("settings_key"), "fingerprint": record.get("fingerprint"),
            "protocol": record.get("protocol"), "run_path_version": record.get("run_path_version") or "nogit",
            "epochs": record.get("epochs"),
        }
        for metric, value in (result.get("test_result") or {}).items():
            row[f"test_{metric}"] = value
        row.update(cold_start.run_columns(result))
        for column in COST_COLUMNS:
            row[column] = result.get(column)
        row["resumed_at_epoch"] = result.get("resumed_at_epoch")
        row["threads"] = record.get("threads")
        row["device"] = device_of(record)
        row["cpu_hours"] = round(cpu_hours(record), 4)
        row["gpu_hours"] = round(gpu_hours(record), 4)
        row["process_seconds"] = record.get("process_seconds", record.get("wall_seconds"))
        row["finished"] = record.get("finished")
        row["config_files"] = " ".join(record.get("config_files") or [])
        row["variant_files"] = " ".join(record.get("variant_files") or [])
        row["error"] = record.get("error")
        row["record"] = record.get("_file")
        rows.append(row)
    return rows


def test_metrics(rows):
    """Test metric names present in any finished run, in table order."""
    names = {
        key[len("test_"):] for row in rows if row["status"] == "ok" for key in row
        if key.startswith("test_") and key not in COST_COLUMNS
    }
    return sorted(names, key=metric_sort_key)


def mean_std(values):
    """``(mean, sample std)`` of the non-missing values; ``(None, None)`` if none, std None if one."""
    values = [float(value) for value in values if value is not None and not _is_nan(value)]
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def _is_nan(value):
    return isinstance(value, float) and math.isnan(value)


def _group_order(entry):
    model = entry["model"] or ""
    rank = MODEL_ORDER.index(model) if model in MODEL_ORDER else len(MODEL_ORDER)
    return (rank, model, entry["label"] != model, entry["label"])


def group_entries(rows):
    """Table lines: ``{'label', 'model', 'code_version', 'settings_key', ..., 'rows': [rows by seed]}``
    in report order (:mod:`adrec_recbole.benchmark.report`); ``rows`` get sorted the same way."""
    groups = {}
    for row in rows:
        key = (row["label"], row["code_version"], row["settings_key"])
        entry = groups.setdefault(key, {
            "label": row["label"], "model": row["model"], "code_version": row["code_version"],
            "settings_key": row["settings_key"], "protocol": row["protocol"],
            "run_path_version": row["run_path_version"], "epochs": row["epochs"],
            "config_files": row["config_files"], "variant_files": row["variant_files"], "rows": [],
        })
        entry["rows"].append(row)
    entries = list(groups.values())
    for entry in entries:
        entry["rows"].sort(key=lambda row: (row["seed"] if isinstance(row["seed"], int) else 0, row["record"] or ""))
        entry["latest"] = max((row["finished"] or "" for row in entry["rows"]), default="")
    entries.sort(key=lambda entry: (entry["latest"], entry["code_version"], entry["settings_key"] or ""), reverse=True)
    entries.sort(key=_group_order)
    rows[:] = [row for entry in entries for row in entry["rows"]]
    return entries


def _ok_by_seed(entry):
    return {row["seed"]: row for row in entry["rows"] if row["status"] == "ok"}


def reference_for(entry, entries):
    """The SASRec line ``entry`` is paired with (:mod:`adrec_recbole.benchmark.report`), or None."""
    if entry["label"] == REFERENCE:
        return None
    mine = _ok_by_seed(entry)
    candidates = [
        other for other in entries
        if other["label"] == REFERENCE and other["model"] == REFERENCE and other["protocol"] == entry["protocol"]
        and other["run_path_version"] == entry["run_path_version"] and set(_ok_by_seed(other)) & set(mine)
    ]
    return max(candidates, key=lambda other: (len(set(_ok_by_seed(other)) & set(mine)), other["latest"]), default=None)


def paired_difference(entry, reference, metric):
    """``(seeds, differences by seed, mean, std)`` of ``entry`` minus ``reference`` on common seeds."""
    mine, theirs = _ok_by_seed(entry), _ok_by_seed(reference)
    seeds = sorted(seed for seed in set(mine) & set(theirs)
                   if mine[seed].get(f"test_{metric}") is not None and theirs[seed].get(f"test_{metric}") is not None)
    differences = {seed: round(mine[seed][f"test_{metric}"] - theirs[seed][f"test_{metric}"], 8) for seed in seeds}
    mean, std = mean_std(differences.values())
    return seeds, differences, _round(mean), _round(std)


def _round(value, digits=8):
    return None if value is None else round(value, digits)


def summary_rows(rows, entries=None):
    """One dict per table line: counts, mean and std of every metric and cost, CPU-hours, the paired
    difference against SASRec. ``entries`` from :func:`group_entries` (computed if not given)."""
    entries = group_entries(rows) if entries is None else entries
    metrics = test_metrics(rows)
    summary = []
    for entry in entries:
        ok = [row for row in entry["rows"] if row["status"] == "ok"]
        line = {
            "label": entry["label"], "model": entry["model"], "code_version": entry["code_version"],
            "settings_key": entry["settings_key"], "epochs": entry["epochs"], "config_files": entry["config_files"],
            "variant_files": entry["variant_files"], "protocol": entry["protocol"],
            "run_path_version": entry["run_path_version"], "runs_ok": len(ok),
            "runs_failed": sum(row["status"] != "ok" for row in entry["rows"]),
            "seeds": " ".join(str(row["seed"]) for row in ok),
        }
        for metric in metrics:
            line[f"{metric}_mean"], line[f"{metric}_std"] = mean_std(row.get(f"test_{metric}") for row in ok)
        for column in COST_COLUMNS:
            line[f"{column}_mean"], line[f"{column}_std"] = mean_std(row.get(column) for row in ok)
        line["threads"] = " ".join(str(value) for value in sorted({row["threads"] for row in ok if row["threads"]}))
        line["devices"] = ", ".join(sorted({row["device"] for row in ok}))
        line["cpu_hours"] = round(sum(row["cpu_hours"] for row in entry["rows"]), 4)
        line["gpu_hours"] = round(sum(row["gpu_hours"] for row in entry["rows"]), 4)
        line["wall_hours"] = round(sum(row["process_seconds"] or 0.0 for row in entry["rows"]) / 3600, 4)
        reference = reference_for(entry, entries)
        line[f"{REFERENCE}_code_version"] = reference["code_version"] if reference else None
        line[f"{REFERENCE}_settings_key"] = reference["settings_key"] if reference else None
        seeds = []
        for metric in metrics:
            if reference:
                seeds, _, mean, _ = paired_difference(entry, reference, metric)
            else:
                mean = None
            line[f"vs_{REFERENCE}_{metric}_mean"] = mean
        line["paired_seeds"] = " ".join(map(str, seeds)) if reference else ""
        summary.append(line)
    return summary


def paired_rows(rows, entries):
    """One dict per (table line paired with SASRec, metric): mean, std and per-seed differences."""
    paired = []
    for entry in entries:
        reference = reference_for(entry, entries)
        if reference is None:
            continue
        for metric in test_metrics(rows):
            seeds, differences, mean, std = paired_difference(entry, reference, metric)
            line = {
                "label": entry["label"], "code_version": entry["code_version"], "settings_key": entry["settings_key"],
                f"{REFERENCE}_code_version": reference["code_version"],
                f"{REFERENCE}_settings_key": reference["settings_key"], "metric": metric,
                "seeds": " ".join(map(str, seeds)), "mean_difference": mean, "std_difference": std,
            }
            for seed in seeds:
                line[f"diff_seed{seed}"] = differences[seed]
            paired.append(line)
    return paired


def cost_rows(rows, entries):
    """CPU-hours, GPU-hours and wall hours per row label (all its lines) and in all."""
    lines = []
    labels = list(dict.fromkeys(entry["label"] for entry in entries))
    for scope, mine in [(label, [row for row in rows if row["label"] == label]) for label in labels] + [("all", rows)]:
        lines.append({
            "scope": scope, "records": len(mine), "runs_ok": sum(row["status"] == "ok" for row in mine),
            "runs_failed": sum(row["status"] != "ok" for row in mine),
            "cpu_hours": round(sum(row["cpu_hours"] for row in mine), 4),
            "gpu_hours": round(sum(row["gpu_hours"] for row in mine), 4),
            "wall_hours": round(sum(row["process_seconds"] or 0.0 for row in mine) / 3600, 4),
        })
    return lines


def write_csv(path, rows):
    """Rows (dicts) as CSV, atomically; columns in first-seen order over all rows; None as an empty cell."""
    columns = []
    for row in rows:
        columns += [key for key in row if key not in columns]

    def write(temporary):
        with open(temporary, "w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            for row in rows:
                writer.writerow({key: ("" if value is None else value) for key, value in row.items()})

    _replace_with(path, write, ".csv")
