"""The search's results: ``results.csv`` and ``results.md`` (every trial, sorted by the validation
metric) and ``best_config.yaml`` (the best completed trial, ready for ``run_recbole.py``)."""
import csv
import json
import os

import yaml

from adrec_recbole.tune.space import plain_value


def format_value(value, short=False):
    """A table cell: floats in full (or 4 digits when ``short``), lists and dicts as JSON."""
    if isinstance(value, float):
        return f"{value:.4g}" if short else repr(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return "" if value is None else str(value)


def format_params(params):
    """``name=value, ...`` with short numbers, for one-line summaries."""
    return ", ".join(f"{key}={format_value(value, short=True)}" for key, value in params.items())


def sort_rows(rows, mode):
    """Trials with a valid score first, best first (ties by trial id); then the others."""
    scored = [row for row in rows if isinstance(row.get("valid"), (int, float))]
    others = [row for row in rows if row not in scored]
    scored.sort(key=lambda row: (-row["valid"] if mode == "max" else row["valid"], row["trial"]))
    return scored + sorted(others, key=lambda row: row["trial"])


def write_tables(rows, settings, out, experiment):
    """``results.csv`` (every column) and ``results.md`` (the main ones), sorted by valid metric."""
    metric = settings["metric"]
    test_keys = sorted({key for row in rows for key in row.get("test", {})})
    header = (["rank", "trial", "status", f"valid_{metric}", "best_epoch", "epochs_run", "stopped_early"]
              + [f"test_{key}" for key in test_keys] + settings["searched"] + ["error", "trial_dir", "result_file"])
    csv_path = os.path.join(out, "results.csv")
    with open(csv_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for rank, row in enumerate(rows, start=1):
            writer.writerow([rank, row["trial"], row.get("status", ""), format_value(row.get("valid")),
                             format_value(row.get("best_epoch")), format_value(row.get("epochs_run")),
                             row.get("stopped_early", "")]
                            + [format_value(row.get("test", {}).get(key)) for key in test_keys]
                            + [format_value(row["params"].get(key)) for key in settings["searched"]]
                            + [row.get("error", ""), row.get("trial_dir", ""), row.get("result_file", "")])
    md_path = os.path.join(out, "results.md")
    lines = [
        f"# {settings['model']} on {settings['dataset']}: {len(rows)} trials, sorted by valid {metric}",
        "",
        f"Search folder: `{experiment}`. Valid = best validation {metric} over the epochs run; "
        f"test = {metric} on the test split with that epoch's weights (completed trials only).",
        "",
        f"| # | trial | valid {metric} | test {metric} | best epoch | epochs | stopped early | status | parameters |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for rank, row in enumerate(rows, start=1):
        status = row.get("status", "")
        if row.get("error"):
            status = f"{status}: {row['error']}"
        cells = [str(rank), row["trial"], format_value(row.get("valid"), short=True),
                 format_value(row.get("test", {}).get(metric), short=True), format_value(row.get("best_epoch")),
                 format_value(row.get("epochs_run")), row.get("stopped_early", ""), status,
                 format_params(row["params"])]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    with open(md_path, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return csv_path, md_path


def read_recbole_yaml(path):
    """A yaml file read as RecBole reads it (its loader also takes ``1e-4`` as a float)."""
    from recbole.config import Config

    with open(path, encoding="utf-8") as handle:
        return yaml.load(handle.read(), Loader=Config._build_yaml_loader(None)) or {}


def write_best_config(rows, settings, out):
    """``best_config.yaml`` of the best completed trial: the search's config files merged, the
    settings given on its command line, the seed and every searched value (no trial paths)."""
    path = os.path.join(out, "best_config.yaml")
    best = next((row for row in rows if row.get("status") == "completed"), None)
    if best is None:
        if os.path.exists(path):
            os.remove(path)  # a stale file from an earlier search would be taken for this one's
        return None, None
    config = {}
    for config_file in settings["config_files"]:
        config.update(read_recbole_yaml(config_file))
    for key in ("checkpoint_dir", "result_file"):
        config.pop(key, None)
    config.update(settings["fixed"])
    config["seed"] = settings["seed"]
    config.update(plain_value(best["params"]))
    relative = os.path.relpath(path)
    if relative.startswith(".."):
        relative = path
    header = (
        f"# Best configuration of the search in {os.path.dirname(best['trial_dir'])}\n"
        f"# trial {best['trial']}: valid {settings['metric']} {best['valid']} (best epoch {best.get('best_epoch')} "
        f"of {best.get('epochs_run')})\n"
        f"# reproduce: python run_recbole.py --model={settings['model']} --dataset={settings['dataset']} "
        f"--config_files={relative}\n"
    )
    with open(path, "w") as handle:
        handle.write(header)
        yaml.safe_dump(config, handle, sort_keys=False, default_flow_style=None)
    return path, best



def _in_trial_order(rows):
    """Rows with a validation score, in the order the trials were made (RecBole's files' order)."""
    return sorted((row for row in rows if isinstance(row.get("valid"), (int, float))), key=lambda row: row["trial"])


def write_recbole_results(rows, path):
    """RecBole's ``HyperTuning.export_result`` file (``run_hyper.py --output_file``): for each
    completed trial, its parameters as ``name:value, ...``, then ``Valid result:`` and ``Test
    result:`` as RecBole's ``dict2str`` prints them, a blank line between trials."""
    from recbole.trainer import HyperTuning
    from recbole.utils.utils import dict2str

    with open(path, "w", encoding="utf-8") as handle:
        for row in _in_trial_order(rows):
            if row.get("status") != "completed":
                continue
            handle.write(HyperTuning.params2str(row["params"]) + "\n")
            handle.write("Valid result:\n" + dict2str(row.get("valid_result") or {}) + "\n")
            handle.write("Test result:\n" + dict2str(row.get("test") or {}) + "\n\n")
    return path


def write_display_file(rows, settings, path):
    """RecBole's ``HyperTuning.plot_hyper`` figure (``run_hyper.py --display_file``): the best
    validation score of each trial in trial order, parameters on hover, as a standalone HTML file.
    (RecBole's own breaks on numpy >= 1.24, ``np.str``, and opens a browser.)"""
    import plotly.graph_objs as go
    from plotly.offline import plot

    scored = _in_trial_order(rows)
    figure = go.Figure(
        data=[go.Scatter(x=[str(number) for number in range(1, len(scored) + 1)], y=[row["valid"] for row in scored],
                         text=[format_params(row["params"]) for row in scored], mode="lines+markers",
                         marker=dict(color="green"), showlegend=True,
                         name=f"{settings['model']} tuning process")],
        layout=go.Layout(title="hyperparams_tuning", xaxis=dict(title="trials"),
                         yaxis=dict(title=f"valid {settings['metric']}")),
    )
    plot(figure, filename=path, auto_open=False)
    return path
