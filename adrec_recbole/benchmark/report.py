"""The benchmark's report, rebuilt from the run records alone (``runs/*.json``, committed).

Nothing but the records goes in: no data, no checkout-specific state, no clock, so
``python -m adrec_recbole.benchmark --dataset D --out results/ --report_only`` on a fresh clone
writes the same tables as the machine that ran the last run. Every record in the folder
counts, whichever invocation or machine wrote it. The tables are computed by
:mod:`adrec_recbole.benchmark.tables`; this module renders them (Markdown, chart) and writes the
files below.

ROWS. Records are grouped by (row label, code version, settings key)
(:mod:`adrec_recbole.benchmark.records`): the seeds of one configuration of one row under one
code version. Records of different code versions, or of different settings (e.g. an
``--epochs 1`` quick look), are never averaged together; they are separate lines of the table,
which shows the code version and settings key of each. Order: ADRec, SASRec, GRU4Rec, BERT4Rec,
FDSA, Pop, other models alphabetically; each model's variants after it; newest code first.

PAIRED DIFFERENCE AGAINST SASRec. For each row other than SASRec: row minus SASRec on every
seed both have finished, then the mean (and sample std) of these differences. The SASRec line
it is paired with has the same PROTOCOL key (dataset, data content, ``--epochs``, the yaml all
rows share) and the same RUN-PATH code version (the code every model runs through), so both
sides ran the same pipeline on the same data; if several qualify (SASRec's own yaml changed),
the one with the most common seeds, then the newest. Rows without such a SASRec line have no
paired difference.

COST. CPU-hours = sum over finished runs on the CPU of (fit seconds + test evaluation seconds) x
torch threads (fit seconds add up over the sessions of a resumed run); GPU-hours = the same seconds
of the runs on a GPU (one GPU each, possibly shared with other runs); wall hours = sum of the worker
processes' wall time over all records, failed ones included (a resumed run counts its last
session only).

Written to ``{out}/{dataset}/``:

* ``runs.csv`` — one row per record: row label, model, seed, status, code version, settings key,
  test metrics, best epoch, epochs run, s/epoch, test evaluation time, peak RSS, parameters,
  device, threads, CPU-hours, GPU-hours, the worker process's wall seconds, error;
* ``summary.csv`` — one row per table line: runs finished/failed, seeds, ``{metric}_mean`` and
  ``{metric}_std`` of every test metric and cost column over the finished seeds (std is the
  sample standard deviation, ddof=1; empty with fewer than two finished runs), devices, CPU-hours,
  GPU-hours, wall
  hours, and the paired difference against SASRec (``vs_SASRec_{metric}_mean``, its seeds and
  SASRec's code version);
* ``paired.csv`` — one row per (table line, metric): mean and std of the paired difference
  against SASRec and the difference on each seed (``diff_seed{N}``);
* ``cost.csv`` — CPU-hours, GPU-hours and wall hours per row label and in all;
* ``cold_start.csv`` — test metrics on the cold-start (and zero-shot) rows, mean and std over seeds
  (:mod:`adrec_recbole.benchmark.cold_start`);
* ``anchors.csv`` — the published numbers of :mod:`adrec_recbole.benchmark.anchors`, each row
  labelled with its paper and preprocessing (never merged into the files above);
* ``README.md`` — the tables in Markdown: our runs, the paired differences, cost, failures, then
  the published anchors in a separate, labelled table;
* ``chart.png`` — left: test metrics, mean over seeds with ±std error bars; right: cost
  (s/epoch and peak RSS). Our runs only.
"""
from pathlib import Path

from adrec_recbole.atomic import _replace_with
from adrec_recbole.benchmark import anchors, cold_start
from adrec_recbole.benchmark.equivalence import load_equivalences, representative
from adrec_recbole.benchmark.records import load_records
from adrec_recbole.benchmark.tables import (
    REFERENCE, cost_rows, group_entries, paired_difference, paired_rows, reference_for, run_rows, summary_rows,
    test_metrics, write_csv,
)

COST_TITLES = {
    "best_epoch": "best epoch", "epochs_run": "epochs run", "seconds_per_epoch": "s/epoch",
    "fit_seconds": "fit s", "test_eval_seconds": "test eval s", "peak_rss_mb": "peak RSS MB",
    "parameters": "parameters",
}


def metric_title(name):
    family, _, cutoff = name.partition("@")
    pretty = {"recall": "Recall", "ndcg": "NDCG", "mrr": "MRR", "hit": "Hit", "precision": "Precision",
              "map": "MAP"}.get(family, family)
    return f"{pretty}@{cutoff}" if cutoff else pretty


def _write_text(path, text):
    def write(temporary):
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)

    _replace_with(path, write, Path(path).suffix)


def _fmt(mean, std, digits):
    if mean is None:
        return "—"
    text = f"{mean:,.{digits}f}"
    return f"{text} ± {std:,.{digits}f}" if std is not None else text


def _signed(value, digits=4):
    return "—" if value is None else f"{value:+.{digits}f}"


def _cell(value):
    return str(value).replace("|", "\\|").replace("\n", " ")


def display_names(entries):
    """Chart/legend names: the label, with ``@code`` where a label has several code versions and
    ``/settings`` where it has several settings."""
    names = {}
    for entry in entries:
        same_label = [other for other in entries if other["label"] == entry["label"]]
        name = entry["label"]
        if len({other["code_version"] for other in same_label}) > 1:
            name += f" @{entry['code_version']}"
        if len({other["settings_key"] for other in same_label}) > 1:
            name += f" /{entry['settings_key']}"
        names[id(entry)] = name
    return names


def markdown(dataset, rows, entries, summary, earlier, anchor_rows, chart_name):
    """The report as Markdown text (from the records alone)."""
    metrics = test_metrics(rows)
    ok = sum(row["status"] == "ok" for row in rows)
    failed = [row for row in rows if row["status"] != "ok"]
    latest = max((row["finished"] or "" for row in rows), default="") or "—"
    costs = cost_rows(rows, entries)[-1]
    data = {}
    for row in rows:
        data.setdefault(row["_data_id"], set()).add(row["_data_text"])
    lines = [
        f"# Benchmark: {dataset}",
        "",
        f"{len(rows)} run records in `runs/` ({ok} finished, {len(failed)} failed); the latest finished "
        f"{latest}. Rebuilt from the records alone by "
        f"`python -m adrec_recbole.benchmark --dataset {dataset} --out <this folder's parent> --report_only`.",
        "",
        "- Data: " + ("; ".join(f"content `{data_id}`: " + ", ".join(sorted(texts))
                                for data_id, texts in sorted(data.items())) or "—")
        + (" — SEVERAL data versions: only lines of the same protocol are comparable" if len(data) > 1 else ""),
        "- Protocol: leave-one-out (last item test, second-to-last valid), full ranking over all items, "
        "every model through `adrec_recbole.quick_start.run` with `properties/overall.yaml`, "
        "`properties/model/<Model>.yaml`, the extra config files and the variant's files; numbers are on the "
        "TEST split at the epoch with the best validation score.",
        "- A line = one row label (a model, or a variant: a model plus extra yaml), one code version, one "
        "settings key. `code`: the git commit of the code that row depends on (`adrec_recbole/benchmark/records.py`; "
        "`+dirty`: uncommitted changes); lines of different code versions or settings are never averaged "
        "together. Settings keys are described below the table: a key covers the contents of the yaml it "
        "names (`git show <code>:adrec_recbole/properties/model/<Model>.yaml` gives the model yaml a line ran).",
        "- Mean ± sample standard deviation over the finished seeds (a single run shows no ±). "
        "Best epoch counts from 0 (RecBole's numbering); s/epoch = fit time / epochs run (training plus "
        "that epoch's validation); test eval s = one full-ranking pass over the test split; peak RSS = the "
        "run process's maximum resident memory (each run has its own process); device: where the runs trained "
        "(runs on a GPU are not bit-reproducible, see the README); CPU-h = (fit + test eval s) x threads of the "
        "runs on the CPU, GPU-h = (fit + test eval s) of the runs on a GPU, summed over the line's runs.",
        "",
        "## Our runs (test split)",
        "",
    ]
    header = ["Row", "code", "settings", "seeds"] + [metric_title(metric) for metric in metrics] + [
        COST_TITLES[column] for column in ("best_epoch", "seconds_per_epoch", "test_eval_seconds", "peak_rss_mb",
                                           "parameters")] + ["device", "threads", "CPU-h", "GPU-h"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for line in summary:
        seeds = line["seeds"].replace(" ", ", ") or "—"
        if line["runs_failed"]:
            seeds += f" ({line['runs_failed']} failed)"
        cells = [line["label"], f"`{line['code_version']}`", f"`{line['settings_key']}`", seeds]
        cells += [_fmt(line[f"{metric}_mean"], line[f"{metric}_std"], 4) for metric in metrics]
        cells += [
            _fmt(line["best_epoch_mean"], line["best_epoch_std"], 1),
            _fmt(line["seconds_per_epoch_mean"], line["seconds_per_epoch_std"], 1),
            _fmt(line["test_eval_seconds_mean"], line["test_eval_seconds_std"], 2),
            _fmt(line["peak_rss_mb_mean"], line["peak_rss_mb_std"], 0),
            _fmt(line["parameters_mean"], None, 0),
            line["devices"] or "—", line["threads"] or "—", f"{line['cpu_hours']:.2f}", f"{line['gpu_hours']:.2f}",
        ]
        lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    lines += ["", "Settings keys:", ""]
    described = {}
    for line in summary:
        described.setdefault(line["settings_key"], line)
    for key, line in described.items():
        epochs = f"`--epochs {line['epochs']}` (quick look)" if line["epochs"] is not None else "epochs from the config"
        files = " ".join(f"`{path}`" for path in (line["config_files"] + " " + line["variant_files"]).split()) or "none"
        code = line["code_version"].split("+")[0]  # a "+dirty-<hash>" version names its base commit
        model_yaml = f"`properties/model/{line['model']}.yaml`"
        model_yaml += f" of code `{code}`" if code != "nogit" else ""
        lines.append(f"- `{key}`: {line['label']} ({line['model']}); {epochs}; model yaml {model_yaml}; "
                     f"extra yaml: {files}; protocol `{line['protocol']}`")
    lines += ["", f"![metrics and cost]({chart_name})", "",
              "Per run: `runs.csv`; per line: `summary.csv`; paired differences: `paired.csv`; cost: `cost.csv`; "
              "run records: `runs/*.json` (committed: each holds its settings, code version, machine and results)."]
    lines += ["", f"## Paired difference against {REFERENCE} (same seeds)", "",
              f"Row minus {REFERENCE} on each seed both finished: the mean, then [each seed's difference, in the "
              f"order of the seeds column]. {REFERENCE}'s line has the same protocol (data, `--epochs`, shared yaml) "
              f"and run-path code version; see `adrec_recbole/benchmark/report.py`.", ""]
    paired = [line for line in summary if line[f"{REFERENCE}_code_version"]]
    if paired:
        header = ["Row", "code", "settings", f"{REFERENCE} code", "seeds"]
        header += [f"Δ {metric_title(metric)}" for metric in metrics]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        by_id = {id(line): entry for line, entry in zip(summary, entries)}
        for line in paired:
            entry = by_id[id(line)]
            reference = reference_for(entry, entries)
            cells = [line["label"], f"`{line['code_version']}`", f"`{line['settings_key']}`",
                     f"`{reference['code_version']}`", line["paired_seeds"].replace(" ", ", ")]
            for metric in metrics:
                _, differences, mean, _ = paired_difference(entry, reference, metric)
                each = ", ".join(_signed(value) for _, value in sorted(differences.items()))
                cells.append(f"{_signed(mean)} [{each}]" if differences else "—")
            lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    else:
        lines.append(f"No line has {REFERENCE} runs of the same protocol and run-path code on common seeds yet.")
    lines += cold_start.markdown_lines(entries)
    lines += ["", "## Compute spent", "",
              f"**{costs['cpu_hours']:.2f} CPU-hours** (sum over finished runs on the CPU of (fit + test eval "
              f"seconds) x torch threads), **{costs['gpu_hours']:.2f} GPU-hours** (the same for runs on a GPU, one "
              f"GPU each, shared with the other runs of that machine) and **{costs['wall_hours']:.2f} wall hours** "
              f"(sum of the runs' process wall times, failed ones included; a resumed run counts its last session only) over {costs['records']} records; per row label in `cost.csv`, per line above."]
    if failed:
        lines += ["", "## Failed runs", "", "| Row | seed | code | error |", "|---|---|---|---|"]
        for row in failed:
            lines.append(f"| {row['label']} | {row['seed']} | `{row['code_version']}` | "
                         f"{_cell((row['error'] or '')[:300])} |")
        lines += ["", "A failed run is tried again by the next benchmark invocation; its log is in "
                      "`runs/<record name>.log` on the machine that ran it (not committed)."]
    if earlier:
        lines += ["", f"{len(earlier)} record(s) of the earlier format (no code version) are left out: "
                      + ", ".join(f"`runs/{name}`" for name in earlier[:10]) + (" ..." if len(earlier) > 10 else "")]
    lines += ["", "## Published anchors — not our runs", ""]
    if anchor_rows:
        lines += [
            "Copied from the papers and the authors' repositories (ADREC_SPEC.md section 6; VQ-Rec: RUCAIBox/VQ-Rec's "
            "README), each measured on its own preprocessing of the Amazon 2018 data. A different preprocessing "
            "(filtering, text fields, history cap) moves these numbers by more than the gaps between models: read "
            "them as reference points, not as rows of the table above. Recformer does not state MRR's cut-off.",
            "",
        ]
        if anchors.data_note(dataset):
            lines += [anchors.data_note(dataset), ""]
        titles = [metric_title(metric) if "@" in metric else "MRR" for metric in anchors.METRICS]
        lines += [
            "| Label | Paper | Model | " + " | ".join(titles) + " |",
            "|---|---|---|" + "---|" * len(titles),
        ]
        for row in anchor_rows:
            values = [("—" if row[key] is None else f"{row[key]:.4f}") for key in anchors.METRICS]
            lines.append(f"| {row['label']} | {row['source']} | {row['model']} | " + " | ".join(values) + " |")
    else:
        lines.append(f"No published numbers for {dataset} in ADREC_SPEC.md section 6.")
    return "\n".join(lines) + "\n"


def chart(path, dataset, rows, entries, summary):
    """The PNG: metric bars with ±std error bars (left), s/epoch and peak RSS bars (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = test_metrics(rows)
    names = display_names(entries)
    lines = [(names[id(entry)], line) for entry, line in zip(entries, summary) if line["runs_ok"]]
    colour_of = {label: number for number, label in enumerate(dict.fromkeys(entry["label"] for entry in entries))}
    figure, (left, right) = plt.subplots(1, 2, figsize=(max(10, 2.2 * len(metrics) + 5), 4.8),
                                         gridspec_kw={"width_ratios": [max(len(metrics), 1), 2]})
    colours = plt.get_cmap("tab10")
    width = 0.8 / max(len(lines), 1)
    for number, (name, line) in enumerate(lines):
        positions = [index + (number - (len(lines) - 1) / 2) * width for index in range(len(metrics))]
        means = [line[f"{metric}_mean"] or 0.0 for metric in metrics]
        errors = [line[f"{metric}_std"] or 0.0 for metric in metrics]
        left.bar(positions, means, width, yerr=errors, capsize=2, label=name,
                 color=colours(colour_of[line["label"]] % 10))
    left.set_xticks(range(len(metrics)), [metric_title(metric) for metric in metrics])
    left.set_ylabel("test score (mean ± std over seeds)")
    left.set_title(f"{dataset}: test metrics of our runs (published anchors: README, not plotted)")
    if lines:
        left.legend(fontsize="small")
    index = range(len(lines))
    speed = right.bar([i - 0.2 for i in index], [line["seconds_per_epoch_mean"] or 0.0 for _, line in lines], 0.4,
                      yerr=[line["seconds_per_epoch_std"] or 0.0 for _, line in lines], capsize=2, color="0.3",
                      label="s/epoch")
    memory_axis = right.twinx()
    memory = memory_axis.bar([i + 0.2 for i in index], [line["peak_rss_mb_mean"] or 0.0 for _, line in lines], 0.4,
                             yerr=[line["peak_rss_mb_std"] or 0.0 for _, line in lines], capsize=2,
                             color="0.8", hatch="//", edgecolor="0.4", label="peak RSS (MB)")
    right.set_xticks(list(index), [name for name, _ in lines], rotation=30, ha="right")
    right.set_ylabel("seconds per epoch")
    memory_axis.set_ylabel("peak RSS (MB)")
    right.set_title("cost")
    right.legend([speed, memory], ["s/epoch", "peak RSS (MB)"], fontsize="small", loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=120, metadata={"Software": None})
    plt.close(figure)


def _data_columns(rows, records):
    for row, record in zip(rows, records):
        data = record.get("data") or {}
        row["_data_id"] = data.get("id") or "?"
        where = data.get("source") or data.get("path")
        row["_data_text"] = (f"`{where}`" if where else "?") + (
            f" ({data['provenance']})" if data.get("provenance") else "")


def _equivalence_note(rows):
    """A paragraph naming the records shown under a newer, verified-equivalent code version."""
    moved = sorted({(row["model"], row["recorded_code_version"], row["code_version"]) for row in rows
                    if row["recorded_code_version"] != row["code_version"]})
    if not moved:
        return ""
    pairs = ", ".join(f"{model} `{old}` as `{new}`" for model, old, new in moved)
    return (f"\nRecords shown under a newer code version that was verified to compute identical runs "
            f"(`../code_equivalence.json`, `python -m adrec_recbole.benchmark.equivalence`): {pairs}.\n")


def build(folder, dataset):
    """Everything the report shows, from the records in ``{folder}/runs/``."""
    records, earlier = load_records(Path(folder) / "runs")
    records = [record for record in records if record.get("dataset") in (None, dataset)]
    equivalences = load_equivalences(Path(folder).parent)
    rows = run_rows(records)
    for row in rows:  # a record of a verified-equivalent version joins the newest version's row
        row["recorded_code_version"] = row["code_version"]
        row["code_version"] = representative(equivalences, row["model"], row["code_version"])
        # run-path versions are verified with the reference's runs: pairs then follow equivalent versions
        row["run_path_version"] = representative(equivalences, REFERENCE, row["run_path_version"])
    _data_columns(rows, records)
    entries = group_entries(rows)
    summary = summary_rows(rows, entries)
    return {"rows": rows, "entries": entries, "summary": summary, "paired": paired_rows(rows, entries),
            "cost": cost_rows(rows, entries), "earlier": earlier}


def write_report(folder, dataset):
    """Write every report file into ``folder`` (``{out}/{dataset}``) from the records in its ``runs/``;
    return ``{'runs', 'summary', 'paired', 'cost', 'anchors', 'cold_start', 'markdown', 'chart'}`` paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    built = build(folder, dataset)
    rows = built["rows"]
    public = [{key: value for key, value in row.items() if not key.startswith("_")} for row in rows]
    anchor_rows = anchors.anchors_for(dataset)
    paths = {name: folder / file for name, file in (
        ("runs", "runs.csv"), ("summary", "summary.csv"), ("paired", "paired.csv"), ("cost", "cost.csv"),
        ("anchors", "anchors.csv"), ("cold_start", "cold_start.csv"), ("markdown", "README.md"),
        ("chart", "chart.png"))}
    write_csv(paths["runs"], public or [{"label": "no run records yet"}])
    write_csv(paths["summary"], built["summary"] or [{"label": "no run records yet"}])
    write_csv(paths["paired"], built["paired"] or [{"label": f"no line paired with {REFERENCE} yet"}])
    write_csv(paths["cost"], built["cost"])
    write_csv(paths["anchors"], anchor_rows or [{"label": f"no published numbers for {dataset}"}])
    write_csv(paths["cold_start"], cold_start.summary(built["entries"]) or [{"label": "no cold-start metrics yet"}])
    chart(paths["chart"], dataset, rows, built["entries"], built["summary"])
    text = markdown(dataset, rows, built["entries"], built["summary"], built["earlier"], anchor_rows,
                    paths["chart"].name) + _equivalence_note(rows)
    _write_text(paths["markdown"], text)
    return paths
