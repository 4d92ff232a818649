"""The benchmark's cold-start table: test metrics on the rows whose target item the model never saw
in training (:mod:`adrec_recbole.cold_start`), from the run records alone.

Every run of the run path records, beside its test metrics, ``cold_start`` (the test rows whose
target occurs nowhere in the training rows: on Scientific 37 rows, 11 items) and, with
``zero_shot_items``, ``zero_shot`` (the test rows targeting the items hidden from training; a
different 10% per seed): ``{"rows", "items", "result"}``. Records written before this existed
have neither and are left out of this table.

:func:`run_columns` flattens them into the per-run rows of the report (``runs.csv``:
``cold_start_rows``, ``cold_start_items``, ``cold_start_ndcg@10``, ...); :func:`summary` gives
one line per (table line, subset) with mean ± sample std over the seeds (``cold_start.csv``);
:func:`markdown_lines` the section of the report's README.
"""
import statistics

SUBSETS = {"cold_start": "targets never in training", "zero_shot": "targets hidden from training (zero-shot)"}
METRIC_TITLES = {"recall": "Recall", "ndcg": "NDCG", "mrr": "MRR", "hit": "Hit", "precision": "Precision"}


def metric_order(name):
    """``recall@10`` < ``ndcg@10`` < ``mrr@10`` < ``recall@50`` ... (the report's order)."""
    family, _, cutoff = name.partition("@")
    families = list(METRIC_TITLES)
    return (int(cutoff) if cutoff.isdigit() else 10 ** 6, families.index(family) if family in families else 99, family)


def run_columns(result):
    """``{f"{subset}_rows", f"{subset}_items", f"{subset}_{metric}"}`` of one record's result."""
    columns = {}
    for subset in SUBSETS:
        recorded = (result or {}).get(subset)
        if not recorded:
            continue
        columns[f"{subset}_rows"] = recorded.get("rows")
        columns[f"{subset}_items"] = recorded.get("items")
        for metric, value in (recorded.get("result") or {}).items():
            columns[f"{subset}_{metric}"] = value
    return columns


def _metrics(rows, subset):
    prefix = f"{subset}_"
    names = {key[len(prefix):] for row in rows for key in row
             if key.startswith(prefix) and key not in (f"{subset}_rows", f"{subset}_items")}
    return sorted(names, key=metric_order)


def _mean_std(values):
    values = [float(value) for value in values if value is not None]
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def summary(entries):
    """One dict per (table line of the report, subset) with finished runs that recorded the subset."""
    lines = []
    for entry in entries:
        ok = [row for row in entry["rows"] if row["status"] == "ok"]
        for subset in SUBSETS:
            recorded = [row for row in ok if row.get(f"{subset}_rows") is not None]
            if not recorded:
                continue
            line = {
                "label": entry["label"], "code_version": entry["code_version"], "settings_key": entry["settings_key"],
                "subset": subset, "seeds": " ".join(str(row["seed"]) for row in recorded),
                "rows": " ".join(str(row[f"{subset}_rows"]) for row in recorded),
                "items": " ".join(str(row[f"{subset}_items"]) for row in recorded),
            }
            for metric in _metrics(recorded, subset):
                line[f"{metric}_mean"], line[f"{metric}_std"] = _mean_std(row.get(f"{subset}_{metric}")
                                                                          for row in recorded)
            lines.append(line)
    return lines


def _cell(mean, std):
    if mean is None:
        return "—"
    return f"{mean:.4f} ± {std:.4f}" if std is not None else f"{mean:.4f}"


def _title(metric):
    family, _, cutoff = metric.partition("@")
    return f"{METRIC_TITLES.get(family, family)}@{cutoff}" if cutoff else family


def markdown_lines(entries):
    """The report's section on cold-start (and zero-shot) rows, as Markdown lines."""
    lines = ["", "## Cold-start test rows", "",
             "Test metrics restricted to the rows whose target item occurs nowhere in the training rows the model "
             "was trained on (and, for runs with `zero_shot_items`, to the rows targeting the items hidden from "
             "training); full ranking over the same catalogue as the main table (`adrec_recbole/cold_start.py`). "
             "`rows`/`items`: per seed. Few rows: read the spread.", ""]
    table = summary(entries)
    if not table:
        return lines + ["No record holds cold-start metrics yet (records written before they were added do not)."]
    metrics = sorted({key[:-len("_mean")] for line in table for key in line if key.endswith("_mean")}, key=metric_order)
    header = ["Row", "code", "settings", "subset", "seeds", "test rows", "items"]
    header += [_title(metric) for metric in metrics]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for line in table:
        cells = [line["label"], f"`{line['code_version']}`", f"`{line['settings_key']}`", SUBSETS[line["subset"]],
                 line["seeds"].replace(" ", ", "), line["rows"].replace(" ", ", "), line["items"].replace(" ", ", ")]
        cells += [_cell(line.get(f"{metric}_mean"), line.get(f"{metric}_std")) for metric in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return lines
