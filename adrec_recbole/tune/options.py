"""The tuner's command-line options, shared by ``python -m adrec_recbole.tune`` and ``run_hyper.py``.

Import-light (argparse only), so that ``--help`` answers at once.
"""

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
