"""Command line of the tuner: ``python -m adrec_recbole.tune`` (``run_hyper.py`` is RecBole's spelling
of the same search, through :func:`add_search_options` and :func:`run_search`)."""
import argparse
import os
import sys

from adrec_recbole.paths import not_found_message, resolve_user_file
from adrec_recbole.quick_start import RunError
from adrec_recbole.tune.hyperopt_runner import run_hyperopt
from adrec_recbole.tune.options import add_search_options
from adrec_recbole.tune.ray_runner import run_ray
from adrec_recbole.tune.report import format_params, sort_rows, write_best_config, write_tables
from adrec_recbole.tune.space import grid_size, read_space
from adrec_recbole.tune.trials import search_settings

def build_parser():
    """The parser of ``python -m adrec_recbole.tune``."""
    parser = argparse.ArgumentParser(
        prog="python -m adrec_recbole.tune", description=sys.modules["adrec_recbole.tune"].__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return add_search_options(parser)


def run_search(args, other_settings=None):
    """The search ``args`` describe, end to end: checks, trials, ``results.csv``/``results.md`` and
    ``best_config.yaml``. ``other_settings``: more RecBole settings for every trial (strings, as
    flags). Returns ``{"settings", "rows" (sorted), "experiment", "csv", "md", "best_config", "best"}``;
    bad input raises :class:`RunError` before any trial runs."""
    if args.trials < 1 or args.cpus_per_trial < 1 or args.gpus_per_trial < 0:
        raise RunError("--trials and --cpus_per_trial must be >= 1 and --gpus_per_trial >= 0")
    if args.tool == "hyperopt" and (args.resume or args.address):
        raise RunError("--resume and --address are for --tool ray")
    params_file = resolve_user_file(args.params_file)
    if params_file is None:
        raise RunError(not_found_message("search space file", args.params_file))
    args.params_file = os.path.abspath(params_file)
    params = read_space(args.params_file)
    if args.algo == "exhaustive" and grid_size(params) > args.trials:
        raise RunError(f"exhaustive search: the choices make {grid_size(params)} combinations, more than "
                       f"--trials {args.trials}; raise --trials or use --algo random/bayes")
    settings = search_settings(args, params, other_settings)
    print("search space:\n  " + "\n  ".join(param.describe() for param in params), flush=True)
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    runner = run_ray if args.tool == "ray" else run_hyperopt
    experiment, rows = runner(args, params, settings, out)
    rows = sort_rows(rows, settings["mode"])
    csv_path, md_path = write_tables(rows, settings, out, experiment)
    best_path, best = write_best_config(rows, settings, out)
    return {"settings": settings, "rows": rows, "experiment": experiment, "csv": csv_path, "md": md_path,
            "best_config": best_path, "best": best}


def print_summary(outcome):
    """The search's last lines (counts, tables, best trial); the exit status: 0, or 1 if no trial completed."""
    rows, settings, best = outcome["rows"], outcome["settings"], outcome["best"]
    counts = {}
    for row in rows:
        counts[row.get("status", "?")] = counts.get(row.get("status", "?"), 0) + 1
    print(f"trials: {', '.join(f'{n} {status}' for status, n in sorted(counts.items()))}")
    print(f"results: {outcome['md']} and {outcome['csv']}")
    if counts.get("unfinished"):
        print(f"{counts['unfinished']} trials unfinished: run the same command again to resume the search")
    if best is None:
        print("no trial completed: no best_config.yaml")
        return 1
    print(f"best: trial {best['trial']} valid {settings['metric']} {best['valid']} | {format_params(best['params'])}")
    print(f"best config: {outcome['best_config']}")
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        outcome = run_search(args)
    except RunError as error:
        sys.exit(f"error: {error}")
    return print_summary(outcome)
