"""The benchmark's report, rebuilt from the run records alone.

Written to ``{out}/{dataset}/``:

* ``runs.csv`` — one row per planned run (model, seed): status, test metrics, best epoch,
  epochs run, s/epoch, test evaluation time, peak RSS, parameters, error;
* ``summary.csv`` — one row per model: runs finished/failed, then ``{metric}_mean`` and
  ``{metric}_std`` of every test metric and cost column over the finished seeds (std is the
  sample standard deviation, ddof=1; empty with fewer than two finished runs);
* ``anchors.csv`` — the published numbers of :mod:`adrec_recbole.benchmark.anchors`, each row
  labelled with its paper and preprocessing (never merged into the two files above);
* ``README.md`` — the tables in Markdown: our runs, failures, then the published anchors in a
  separate, labelled table;
* ``chart.png`` — left: test metrics, mean over seeds with ±std error bars; right: cost
  (s/epoch and peak RSS). Our runs only.
"""
import csv
import math
import os
import statistics
import time
from pathlib import Path

from adrec_recbole.benchmark import anchors
from adrec_recbole.benchmark.records import read_json

METRIC_ORDER = ("recall", "ndcg", "mrr", "hit", "precision", "map")
COST_COLUMNS = ("best_epoch", "epochs_run", "seconds_per_epoch", "fit_seconds", "test_eval_seconds",
                "peak_rss_mb", "parameters")
COST_TITLES = {
    "best_epoch": "best epoch", "epochs_run": "epochs run", "seconds_per_epoch": "s/epoch",
    "fit_seconds": "fit s", "test_eval_seconds": "test eval s", "peak_rss_mb": "peak RSS MB",
    "parameters": "parameters",
}


def metric_sort_key(name):
    """``recall@10`` < ``ndcg@10`` < ``mrr@10`` < ``recall@50`` ... (cut-off first, then family)."""
    family, _, cutoff = name.partition("@")
    rank = METRIC_ORDER.index(family) if family in METRIC_ORDER else len(METRIC_ORDER)
    return (int(cutoff) if cutoff.isdigit() else 10 ** 6, rank, family)


def metric_title(name):
    family, _, cutoff = name.partition("@")
    pretty = {"recall": "Recall", "ndcg": "NDCG", "mrr": "MRR", "hit": "Hit", "precision": "Precision",
              "map": "MAP"}.get(family, family)
    return f"{pretty}@{cutoff}" if cutoff else pretty


def run_rows(planned_runs):
    """One dict per planned run, from its record (``status: missing`` when it has none yet)."""
    rows = []
    for planned in planned_runs:
        record = read_json(planned.record_path) or {}
        result = record.get("result") or {}
        row = {
            "model": planned.model, "seed": planned.seed, "status": record.get("status", "missing"),
            "fingerprint": planned.fingerprint,
        }
        for metric, value in (result.get("test_result") or {}).items():
            row[f"test_{metric}"] = value
        for column in COST_COLUMNS:
            row[column] = result.get(column)
        row["threads"] = record.get("threads")
        row["wall_seconds"] = record.get("wall_seconds")
        row["git_commit"] = record.get("git_commit")
        row["error"] = record.get("error")
        row["record"] = planned.record_path.name
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


def summary_rows(rows, models):
    """One dict per model (in ``models`` order): counts, then mean and std of every metric and cost."""
    metrics = test_metrics(rows)
    summary = []
    for model in models:
        mine = [row for row in rows if row["model"] == model]
        ok = [row for row in mine if row["status"] == "ok"]
        entry = {
            "model": model, "runs_ok": len(ok), "runs_failed": sum(row["status"] == "failed" for row in mine),
            "runs_planned": len(mine), "seeds": " ".join(str(row["seed"]) for row in ok),
        }
        for metric in metrics:
            entry[f"{metric}_mean"], entry[f"{metric}_std"] = mean_std(row.get(f"test_{metric}") for row in ok)
        for column in COST_COLUMNS:
            entry[f"{column}_mean"], entry[f"{column}_std"] = mean_std(row.get(column) for row in ok)
        summary.append(entry)
    return summary


def write_csv(path, rows):
    """Rows (dicts) as CSV; columns in first-seen order over all rows; None as an empty cell."""
    columns = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({key: ("" if value is None else value) for key, value in row.items()})


def _fmt(mean, std, digits):
    if mean is None:
        return "—"
    text = f"{mean:,.{digits}f}"
    return f"{text} ± {std:,.{digits}f}" if std is not None else text


def _cell(value):
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown(settings, rows, summary, data_root, anchor_rows, chart_name):
    """The report as Markdown text."""
    metrics = test_metrics(rows)
    ok = sum(row["status"] == "ok" for row in rows)
    failed = [row for row in rows if row["status"] == "failed"]
    missing = sum(row["status"] == "missing" for row in rows)
    threads = sorted({row["threads"] for row in rows if row["status"] == "ok" and row["threads"]})
    commits = sorted({row["git_commit"] for row in rows if row["status"] == "ok" and row["git_commit"]})
    lines = [
        f"# Benchmark: {settings.dataset}",
        "",
        f"Our runs: {ok} of {len(rows)} finished, {len(failed)} failed, {missing} not run yet "
        f"(models {', '.join(settings.models)}; seeds {', '.join(map(str, settings.seeds))}). "
        f"Updated {time.strftime('%Y-%m-%d %H:%M')}.",
        "",
        f"- Written by: `{settings.command or 'python -m adrec_recbole.benchmark'}` "
        "(each run's own command and settings are in its record)",
        f"- Data: `{data_root}/{settings.dataset}`" + _provenance(Path(data_root) / settings.dataset, settings.dataset),
        "- Protocol: leave-one-out (last item test, second-to-last valid), full ranking over all items, "
        "every model through `adrec_recbole.quick_start.run` with `properties/overall.yaml`, "
        "`properties/model/<Model>.yaml` and the extra config files; numbers are on the TEST split at the "
        "epoch with the best validation score.",
        f"- Extra config files: {', '.join(f'`{path}`' for path in settings.config_files) or 'none'}; "
        f"epochs: {settings.epochs if settings.epochs is not None else 'from the config (early stopping)'}; "
        f"torch threads per run: {', '.join(map(str, threads)) or settings.threads}"
        + (" (MIXED: s/epoch not comparable)" if len(threads) > 1 else "")
        + f"; code: {', '.join(commits) or 'unknown'}.",
        "- Mean ± sample standard deviation over the finished seeds (a single run shows no ±). "
        "Best epoch counts from 0 (RecBole's numbering); s/epoch = fit time / epochs run (training plus "
        "that epoch's validation); test eval s = one full-ranking pass over the test split; peak RSS = the "
        "run process's maximum resident memory (each run has its own process).",
        "",
        "## Our runs (test split)",
        "",
    ]
    header = ["Model", "runs"] + [metric_title(metric) for metric in metrics] + [
        COST_TITLES[column] for column in ("best_epoch", "seconds_per_epoch", "test_eval_seconds", "peak_rss_mb",
                                           "parameters")]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for entry in summary:
        cells = [entry["model"], f"{entry['runs_ok']}/{entry['runs_planned']}"]
        cells += [_fmt(entry[f"{metric}_mean"], entry[f"{metric}_std"], 4) for metric in metrics]
        cells += [
            _fmt(entry["best_epoch_mean"], entry["best_epoch_std"], 1),
            _fmt(entry["seconds_per_epoch_mean"], entry["seconds_per_epoch_std"], 1),
            _fmt(entry["test_eval_seconds_mean"], entry["test_eval_seconds_std"], 2),
            _fmt(entry["peak_rss_mb_mean"], entry["peak_rss_mb_std"], 0),
            _fmt(entry["parameters_mean"], None, 0),
        ]
        lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    lines += ["", f"![metrics and cost]({chart_name})", "",
              "Per run: `runs.csv`; per model: `summary.csv`; run records: `runs/*.json` (not committed)."]
    if failed:
        lines += ["", "## Failed runs", "", "| Model | seed | error | log |", "|---|---|---|---|"]
        for row in failed:
            log = row["record"].replace(".json", ".log")
            lines.append(f"| {row['model']} | {row['seed']} | {_cell((row['error'] or '')[:300])} | `runs/{log}` |")
    lines += ["", "## Published anchors — not our runs", ""]
    if anchor_rows:
        lines += [
            "Copied from the papers (ADREC_SPEC.md section 6), each measured on its paper's own preprocessing of "
            "the Amazon 2018 data. A different preprocessing (filtering, text fields, history cap) moves these "
            "numbers by more than the gaps between models: read them as reference points, not as rows of the "
            "table above. Recformer does not state MRR's cut-off.",
            "",
        ]
        if anchors.data_note(settings.dataset):
            lines += [anchors.data_note(settings.dataset), ""]
        lines += [
            "| Label | Paper | Model | Recall@10 | NDCG@10 | MRR |",
            "|---|---|---|---|---|---|",
        ]
        for row in anchor_rows:
            values = [("—" if row[key] is None else f"{row[key]:.4f}") for key in anchors.METRICS]
            lines.append(f"| {row['label']} | {row['source']} | {row['model']} | " + " | ".join(values) + " |")
    else:
        lines.append(f"No published numbers for {settings.dataset} in ADREC_SPEC.md section 6.")
    return "\n".join(lines) + "\n"


def _provenance(folder, name):
    meta = read_json(folder / f"{name}.meta.json")
    if not meta:
        return ""
    source = meta.get("source") or meta.get("format") or meta.get("origin")
    counts = meta.get("counts") or {}
    parts = []
    if source:
        parts.append(str(source))
    if counts:
        parts.append(", ".join(f"{counts[key]:,} {key}" for key in ("users", "items", "interactions") if key in counts))
    return f" ({'; '.join(parts)})" if parts else ""


def chart(path, settings, rows, summary):
    """The PNG: metric bars with ±std error bars (left), s/epoch and peak RSS bars (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = test_metrics(rows)
    colour_of = {entry["model"]: number for number, entry in enumerate(summary)}  # stable across reports
    models = [entry for entry in summary if entry["runs_ok"]]
    figure, (left, right) = plt.subplots(1, 2, figsize=(max(10, 2.2 * len(metrics) + 5), 4.8),
                                         gridspec_kw={"width_ratios": [max(len(metrics), 1), 2]})
    colours = plt.get_cmap("tab10")
    width = 0.8 / max(len(models), 1)
    for number, entry in enumerate(models):
        positions = [index + (number - (len(models) - 1) / 2) * width for index in range(len(metrics))]
        means = [entry[f"{metric}_mean"] or 0.0 for metric in metrics]
        errors = [entry[f"{metric}_std"] or 0.0 for metric in metrics]
        left.bar(positions, means, width, yerr=errors, capsize=2, label=entry["model"],
                 color=colours(colour_of[entry["model"]] % 10))
    left.set_xticks(range(len(metrics)), [metric_title(metric) for metric in metrics])
    left.set_ylabel("test score (mean ± std over seeds)")
    left.set_title(f"{settings.dataset}: test metrics of our runs (published anchors: README, not plotted)")
    if models:
        left.legend(fontsize="small")
    names = [entry["model"] for entry in models]
    index = range(len(models))
    speed = right.bar([i - 0.2 for i in index], [entry["seconds_per_epoch_mean"] or 0.0 for entry in models], 0.4,
                      yerr=[entry["seconds_per_epoch_std"] or 0.0 for entry in models], capsize=2, color="0.3",
                      label="s/epoch")
    memory_axis = right.twinx()
    memory = memory_axis.bar([i + 0.2 for i in index], [entry["peak_rss_mb_mean"] or 0.0 for entry in models], 0.4,
                             yerr=[entry["peak_rss_mb_std"] or 0.0 for entry in models], capsize=2,
                             color="0.8", hatch="//", edgecolor="0.4", label="peak RSS (MB)")
    right.set_xticks(list(index), names, rotation=30, ha="right")
    right.set_ylabel("seconds per epoch")
    memory_axis.set_ylabel("peak RSS (MB)")
    right.set_title("cost")
    right.legend([speed, memory], ["s/epoch", "peak RSS (MB)"], fontsize="small", loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_report(settings, planned_runs, data_root):
    """Write every report file; return ``{'runs', 'summary', 'anchors', 'markdown', 'chart'}`` paths."""
    folder = Path(settings.folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = run_rows(planned_runs)
    summary = summary_rows(rows, settings.models)
    anchor_rows = anchors.anchors_for(settings.dataset)
    paths = {name: folder / file for name, file in (
        ("runs", "runs.csv"), ("summary", "summary.csv"), ("anchors", "anchors.csv"),
        ("markdown", "README.md"), ("chart", "chart.png"))}
    write_csv(paths["runs"], rows)
    write_csv(paths["summary"], summary)
    write_csv(paths["anchors"], anchor_rows or [{"label": f"no published numbers for {settings.dataset}"}])
    chart(paths["chart"], settings, rows, summary)
    text = markdown(settings, rows, summary, data_root, anchor_rows, paths["chart"].name)
    temporary = paths["markdown"].with_suffix(".md.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, paths["markdown"])
    return paths
