"""Command line of the tuner: ``python -m adrec_recbole.tune`` (``run_hyper.py`` is RecBole's spelling
of the same search, through :func:`add_search_options` and :func:`run_search`)."""
import argparse
import os
import sys

from adrec_recbole.paths import not_found_message, resolve_user_file
from adrec_recbole.quick_start import RunError
from adrec_recbole.tune.hyperopt_runner import run_hyperopt
from adrec_recbole.tune.ray_runner import run_ray
from adrec_recbole.tune.report import format_params, sort_rows, write_best_config, write_tables
from adrec_recbole.tune.space import grid_size, read_space
from adrec_recbole.tune.trials import search_settings

TOOLS = ("ray", "hyperopt")
ALGOS = ("random", "bayes", "exhaustive")


def add_search_options(parser, params_file=None, tool="ray"):
    """The search's options on ``parser``; ``params_file``/``tool``: their defaults (None: required)."""
    parser.add_argument("--params_file", required=params_file is None, default=params_file,
                        help="search space in RecBole's format (ADRec's: hyper.test, found in the package)")
    parser.add_argument("--dataset", "-d", default="Scientific")
    parser.add_argument("--model", "-m", default="ADRec", help="ADRec or a RecBole model name")
    parser.add_argument("--config_files", default=None, help="space-separated yaml files applied to every trial")
    parser.add_argument("--data_path", default=None, help="folder holding the dataset folder (default: config)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per trial (default: config, 300)")
    parser.add_argument("--metric", default=None, help="validation metric to optimise (default: config valid_metric)")
    parser.add_argument("--seed", type=int, default=None, help="seed of every trial and of the sampler (default: config)")
    parser.add_argument("--tool", type=str.lower, choices=TOOLS, default=tool,
                        help=f"ray (parallel trials, ASHA) or hyperopt (RecBole's HyperTuning, in this process; "
                             f"default: {tool})")
    parser.add_argument("--algo", choices=ALGOS, default="random",
                        help="random sampling, bayes (TPE), or exhaustive (every combination of the choices)")
    parser.add_argument("--trials", "--max_evals", dest="trials", type=int, default=16,
                        help="number of trials (exhaustive: an upper bound)")
    parser.add_argument("--cpus_per_trial", type=int, default=1, help="CPUs per trial; also its torch threads")
    parser.add_argument("--gpus_per_trial", type=float, default=0, help="GPUs per trial (fractions share a GPU)")
    parser.add_argument("--max_concurrent", type=int, default=None, help="at most this many trials at once (ray)")
    parser.add_argument("--out", default="tuning", help="output folder (tables, best_config.yaml, trials)")
    parser.add_argument("--name", default=None, help="search folder name under --out")
    parser.add_argument("--address", default=None,
                        help="existing Ray cluster: auto, HOST:PORT or ray://HOST:10001 (default: start one)")
    parser.add_argument("--resume", action="store_true",
                        help="resume the interrupted Ray search in --out/--name (also automatic when it exists)")
    parser.add_argument("--retry_errored", action="store_true", help="on resume, run failed trials again (ray)")
    parser.add_argument("--scheduler", choices=("asha", "fifo"), default="asha", help="ray: ASHA or none")
    parser.add_argument("--grace_period", type=int, default=1, help="ASHA: epochs before a trial can be stopped")
    parser.add_argument("--reduction_factor", type=float, default=2, help="ASHA: keep 1/this at each rung")
    parser.add_argument("--worker_logs", action="store_true", help="ray: show the workers' output")
    return parser


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
