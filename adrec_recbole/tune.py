"""Hyperparameter search for ADRec (or any RecBole model) with Ray Tune or RecBole's HyperTuning.

    python -m adrec_recbole.tune --params_file hyper.test --dataset Scientific --tool ray \\
        --trials 16 --cpus_per_trial 1 --gpus_per_trial 0 --epochs 5 --out tuning/
    python -m adrec_recbole.tune --params_file hyper.test --dataset Scientific --tool hyperopt \\
        --algo bayes --trials 16 --epochs 5 --out tuning/

The search space is a file in RecBole's format, one parameter per line, ``name type value``
(single spaces): ``choice [v1,v2]``, ``uniform lo,hi``, ``loguniform lo,hi`` (bounds are NATURAL
LOG exponents: ``-9.21,-5.30`` means 1e-4..5e-3), ``quniform lo,hi,q`` (floats: use choice for
integers). The same file works with RecBole's own ``run_hyper.py``.

Written to ``--out``: ``results.csv`` and ``results.md`` (every trial, sorted by the valid metric:
trial id, parameters, best valid metric, test metrics, epochs run, stopped early?, status or
error), ``best_config.yaml`` (reproduce the best completed trial with
``python run_recbole.py --model=ADRec --dataset=NAME --config_files=OUT/best_config.yaml``),
and one folder per search holding one folder per trial (``checkpoints/``, ``run_result.json``,
``trial.log``).

``--tool hyperopt`` runs RecBole's ``HyperTuning`` in this process, one trial at a time; a trial
that raises is recorded and the search goes on; ``bayes`` (TPE) samples the first half of the
trials (at most 20) at random. ``--tool ray`` runs trials in parallel on a local or existing Ray
cluster. RecBole's own Ray path (``run_hyper.py --tool=Ray``) fails on this stack in several
ways; here each trial requests exactly ``--cpus_per_trial``/``--gpus_per_trial``
and runs on the devices Ray gave it (RecBole's ``gpu_id`` would overwrite them); every path is
absolute and Ray does not change directory; workers import this package (PYTHONPATH in the
runtime environment), which applies :mod:`adrec_recbole.compat`; each trial reports every epoch
(ASHA stops weak trials after ``--grace_period`` epochs) and has its own checkpoint folder and
result file (parallel trials otherwise share checkpoint names and load each other's weights); a
trial that raises is recorded as an error while the others finish; an interrupted search
resumes (``--resume``, or by running the same command again).
"""
import argparse
import ast
import contextlib
import csv
import difflib
import io
import json
import logging
import math
import os
import sys
import time

import yaml

from adrec_recbole.quick_start import PROJECT_ROOT, RunError, build_config, prepare_data, run

TOOLS = ("ray", "hyperopt")
ALGOS = ("random", "bayes", "exhaustive")
KINDS = ("choice", "uniform", "loguniform", "quniform")
PATH_KEYS = ("plm_cache_dir", "plm_path")  # made absolute for trials when they name local paths
SEARCH_FILE = "search.json"


# ---- the search space ------------------------------------------------------------------------
class Param:
    """One line of a search-space file: ``name kind args`` (args: choices or numeric bounds)."""

    def __init__(self, name, kind, args, line):
        self.name, self.kind, self.args, self.line = name, kind, args, line

    def describe(self):
        if self.kind == "choice":
            return f"{self.name}: choice of {len(self.args)} {self.args}"
        if self.kind == "loguniform":
            low, high = (math.exp(bound) for bound in self.args)
            return f"{self.name}: loguniform e^{self.args[0]:g}..e^{self.args[1]:g} = {low:.3g}..{high:.3g}"
        return f"{self.name}: {self.kind} {','.join(f'{arg:g}' for arg in self.args)}"


def read_space(path):
    """The parameters of a RecBole search-space file, checked line by line.

    Lines are read as RecBole's ``HyperTuning._build_space_from_file`` reads them (fields split on
    single spaces, the value is the rest of the line with its spaces removed), so a file accepted
    here means the same to RecBole. Stricter: a non-blank line that RecBole would skip, an unknown
    type, a malformed value or a repeated name is an error naming the line.
    """
    if not os.path.isfile(path):
        raise RunError(f"search space file not found: {path}")
    params = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            where = f"{path}, line {number}"
            if not line.strip():
                continue
            fields = line.strip().split(" ")
            if len(fields) < 3 or "" in fields[:2]:
                raise RunError(f"{where}: expected `name type value` separated by single spaces, got {line.strip()!r}")
            name, kind, value = fields[0], fields[1], "".join(fields[2:])
            if kind not in KINDS:
                raise RunError(f"{where}: unknown type {kind!r} (use {', '.join(KINDS)})")
            if name in params:
                raise RunError(f"{where}: {name} is already defined on line {params[name].line}")
            params[name] = Param(name, kind, _parse_value(kind, value, where), number)
    if not params:
        raise RunError(f"{path}: no parameters")
    return list(params.values())


def _parse_value(kind, value, where):
    if kind == "choice":
        try:
            choices = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise RunError(f"{where}: choice needs a Python list of literals, got {value!r}") from None
        if not isinstance(choices, (list, tuple)) or not choices:
            raise RunError(f"{where}: choice needs a non-empty list, got {value!r}")
        return list(choices)
    count = 3 if kind == "quniform" else 2
    try:
        numbers = [float(part) for part in value.split(",")]
    except ValueError:
        numbers = []
    if len(numbers) != count:
        form = "lo,hi,q" if kind == "quniform" else "lo,hi"
        raise RunError(f"{where}: {kind} needs {form} (numbers), got {value!r}")
    if numbers[0] > numbers[1] or (kind == "quniform" and numbers[2] <= 0):
        raise RunError(f"{where}: {kind} bounds out of order or q <= 0: {value!r}")
    return numbers


def grid_size(params):
    """How many combinations the ``choice`` parameters make (what exhaustive search runs)."""
    return math.prod(len(param.args) for param in params if param.kind == "choice")


def ray_space(params, grid=False):
    """Ray Tune's search space for ``params``; ``grid`` turns every choice into a grid search.

    RecBole's loguniform bounds are natural-log exponents; Ray's are the values themselves.
    """
    from ray import tune

    space = {}
    for param in params:
        if param.kind == "choice":
            space[param.name] = tune.grid_search(param.args) if grid else tune.choice(param.args)
        elif param.kind == "uniform":
            space[param.name] = tune.uniform(*param.args)
        elif param.kind == "loguniform":
            space[param.name] = tune.loguniform(math.exp(param.args[0]), math.exp(param.args[1]))
        else:
            space[param.name] = tune.quniform(*param.args)
    return space


def _plain(value):
    """Built-in Python value of ``value`` (numpy scalars and arrays, tuples) for YAML/JSON/RecBole."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


# ---- settings shared by the driver and every trial ----------------------------------------------
@contextlib.contextmanager
def _clean_process_state():
    """RecBole's Config reads ``--key=value`` from ``sys.argv`` (ours, or a Ray worker's) and sets
    CUDA_VISIBLE_DEVICES from ``gpu_id``: neither may leak into or out of a trial or the driver."""
    argv, devices = sys.argv, os.environ.get("CUDA_VISIBLE_DEVICES")
    sys.argv = [argv[0] if argv else "adrec_recbole.tune"]
    try:
        yield
    finally:
        sys.argv = argv
        if devices is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = devices


def search_settings(args, params):
    """Everything a trial needs besides its parameters, checked once in the driver (JSON-able)."""
    config_files = [os.path.abspath(path) for path in (args.config_files.split() if args.config_files else [])]
    fixed = {}  # settings given on this command line: they go into best_config.yaml
    if args.data_path:
        fixed["data_path"] = os.path.abspath(args.data_path)
    if args.epochs is not None:
        fixed["epochs"] = args.epochs
    if args.seed is not None:
        fixed["seed"] = args.seed
    if args.metric:
        fixed["valid_metric"] = args.metric
    with _clean_process_state():
        config = build_config(args.model, args.dataset, config_files, dict(fixed))
    known = config.final_config_dict
    for param in params:
        if param.name not in known:
            close = difflib.get_close_matches(param.name, list(known), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise RunError(f"search space: {param.name!r} is not a setting of {config['model']}{hint}")
    metric = config["valid_metric"]
    name, _, k = metric.partition("@")
    topk = [str(value) for value in (config["topk"] if isinstance(config["topk"], list) else [config["topk"]])]
    if name.lower() not in [m.lower() for m in config["metrics"]] or (k and k not in topk):
        raise RunError(f"metric {metric} is not computed: metrics {config['metrics']}, topk {config['topk']}")
    prepare_data(config)  # a missing dataset fails here once (or is downloaded once), not in every trial
    paths = {"data_path": os.path.abspath(os.path.dirname(config["data_path"]))}  # RecBole appended the name
    for key in PATH_KEYS:
        value = known.get(key)
        if isinstance(value, str) and value and (key != "plm_path" or os.path.exists(value)):
            paths[key] = os.path.abspath(value)
    return {
        "model": args.model,
        "dataset": args.dataset,
        "config_files": config_files,
        "fixed": fixed,
        "paths": paths,
        "searched": [param.name for param in params],
        "metric": metric.lower(),  # RecBole's result keys are lower case
        "mode": "max" if config["valid_metric_bigger"] else "min",
        "epochs": int(config["epochs"]),
        "seed": int(config["seed"]),
        "state": config["state"] or "INFO",
        "threads": max(1, int(args.cpus_per_trial)),
        "cwd": os.getcwd(),
    }


@contextlib.contextmanager
def _trial_log(path, state):
    """Send RecBole's log of one trial to ``path`` only.

    RecBole's ``init_logger`` attaches its handlers through ``logging.basicConfig``, which does
    nothing when the root logger already has handlers: installed here first, this handler gets
    the whole trial's log (without colour codes) and nothing goes to the console. Without it,
    in-process trials after the first would all log into the first trial's file.
    """
    from recbole.utils.logger import RemoveColorFilter

    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s  %(message)s"))
    handler.addFilter(RemoveColorFilter())
    root.handlers = [handler]
    root.setLevel(getattr(logging, str(state).upper(), logging.INFO))
    try:
        yield
    finally:
        handler.close()
        root.handlers, root.level = saved_handlers, saved_level


def run_trial(settings, params, trial_dir, gpu_ids=None, callback_fn=None):
    """One trial: :func:`run` with ``params`` over the search's settings, outputs in ``trial_dir``.

    ``gpu_ids``: the devices to use ([] for the CPU; None keeps the configuration's ``gpu_id``).
    """
    import torch

    os.makedirs(trial_dir, exist_ok=True)
    torch.set_num_threads(settings["threads"])
    config_dict = {
        **settings["fixed"], **settings["paths"], **_plain(params),
        "checkpoint_dir": os.path.join(trial_dir, "checkpoints"),
        "result_file": os.path.join(trial_dir, "run_result.json"),
        "show_progress": False,
        "resume": True,  # a trial restarted by a resumed search continues from its last epoch
    }
    if gpu_ids is not None:
        config_dict.update(use_gpu=bool(gpu_ids), gpu_id=",".join(str(gpu) for gpu in gpu_ids))
    with _clean_process_state(), _trial_log(os.path.join(trial_dir, "trial.log"), settings["state"]):
        return run(settings["model"], settings["dataset"], settings["config_files"], config_dict,
                   callback_fn=callback_fn)


def _better(score, best, mode):
    return best is None or (score > best if mode == "max" else score < best)


# ---- Ray Tune ---------------------------------------------------------------------------------
def _ray_trial(config, settings):
    """Ray's trainable: report every validation to Ray (ASHA decides after each epoch)."""
    import ray
    from ray.air import session

    if os.path.isdir(settings["cwd"]):
        os.chdir(settings["cwd"])  # relative paths the user's files may hold mean what they meant
    metric, mode = settings["metric"], settings["mode"]
    state = {"best": None, "last_epoch": None}

    def report(epoch_idx, valid_score):
        valid_score = float(valid_score)
        if _better(valid_score, state["best"], mode):
            state["best"] = valid_score
        result = {metric: valid_score, f"best_{metric}": state["best"], "epoch": epoch_idx + 1}
        if epoch_idx + 1 >= settings["epochs"]:
            # ASHA stops every trial that reaches max_t, the moment it reports it: the last epoch
            # is reported after the test evaluation, or no trial would ever complete.
            state["last_epoch"] = result
        else:
            session.report(result)

    gpu_ids = [str(gpu) for gpu in ray.get_gpu_ids()]
    outcome = run_trial(settings, config, session.get_trial_dir(), gpu_ids=gpu_ids, callback_fn=report)
    if state["last_epoch"] is None and outcome["epochs_run"] >= settings["epochs"]:
        # resumed after its last epoch had run (killed before reporting it): report from the run
        best = float(outcome["best_valid_score"])
        state["last_epoch"] = {metric: best, f"best_{metric}": best, "epoch": outcome["epochs_run"]}
    if state["last_epoch"] is not None:
        session.report({**state["last_epoch"], f"test_{metric}": outcome["test_result"].get(metric)})


def _ray_trainable(settings):
    """The trainable Ray runs: a closure over the search's settings (pickled with it, so it also
    works through Ray Client, where ``tune.with_parameters`` cannot reach the worker's registry)."""

    def trainable(config):
        _ray_trial(config, settings)

    trainable.__name__ = trainable.__qualname__ = settings["model"]  # Ray names trials after it
    return trainable


def _trial_dirname(trial):
    return f"trial_{trial.trial_id}"


def _ray_runtime_env(settings):
    """Environment of every Ray worker: this package importable, one BLAS thread pool per trial."""
    python_path = os.pathsep.join(filter(None, [PROJECT_ROOT, os.environ.get("PYTHONPATH")]))
    threads = str(settings["threads"])
    return {"env_vars": {
        "PYTHONPATH": python_path, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
        "TOKENIZERS_PARALLELISM": "false",
    }}


def run_ray(args, params, settings, out):
    import ray
    from ray import tune
    from ray.air import FailureConfig, RunConfig
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    name = args.name or f"ray-{settings['model']}-{settings['dataset']}"
    experiment = os.path.join(out, name)
    restoring = tune.Tuner.can_restore(experiment)
    if args.resume and not restoring:
        raise RunError(f"--resume: no Ray search to resume in {experiment}")
    _check_same_search(experiment, settings, args, params, restoring)

    trainable = tune.with_resources(
        _ray_trainable(settings),
        {"cpu": args.cpus_per_trial, "gpu": args.gpus_per_trial},
    )
    # "local": without --address always start a new local cluster; ray.init(address=None) would
    # connect to whatever /tmp/ray/ray_current_cluster names, a dead cluster included.
    ray.init(address=args.address or "local", include_dashboard=False, log_to_driver=args.worker_logs,
             runtime_env=_ray_runtime_env(settings))
    try:
        if restoring:
            print(f"resuming the search in {experiment}", flush=True)
            tuner = tune.Tuner.restore(experiment, trainable, resume_unfinished=True,
                                       resume_errored=False, restart_errored=args.retry_errored)
        else:
            metric, mode, seed = settings["metric"], settings["mode"], settings["seed"]
            num_samples, space = args.trials, ray_space(params)
            # Ray ignores TuneConfig.max_concurrent_trials (with a warning) for a
            # BasicVariantGenerator passed in: the generator itself takes the limit.
            search_alg = BasicVariantGenerator(random_state=seed, max_concurrent=args.max_concurrent or 0)
            max_concurrent = None
            if args.algo == "exhaustive":
                num_samples, space = 1, ray_space(params, grid=True)
            elif args.algo == "bayes":
                from ray.tune.search.hyperopt import HyperOptSearch
                from recbole.trainer import HyperTuning

                search_alg = HyperOptSearch(
                    space=HyperTuning._build_space_from_file(args.params_file), metric=metric, mode=mode,
                    n_initial_points=_startup_trials(args.trials), random_state_seed=seed,
                )
                space, max_concurrent = None, args.max_concurrent  # Ray wraps a Searcher in a ConcurrencyLimiter
            scheduler = FIFOScheduler()
            if args.scheduler == "asha":
                scheduler = ASHAScheduler(time_attr="epoch", max_t=settings["epochs"],
                                          grace_period=min(args.grace_period, settings["epochs"]),
                                          reduction_factor=args.reduction_factor)
            tuner = tune.Tuner(
                trainable,
                param_space=space,
                tune_config=tune.TuneConfig(
                    metric=metric, mode=mode, num_samples=num_samples, search_alg=search_alg,
                    scheduler=scheduler, max_concurrent_trials=max_concurrent, reuse_actors=False,
                    trial_dirname_creator=_trial_dirname, chdir_to_trial_dir=False,
                ),
                run_config=RunConfig(
                    name=name, storage_path=out,
                    failure_config=FailureConfig(max_failures=0, fail_fast=False),
                ),
            )
        grid = tuner.fit()
        return experiment, [_ray_row(trial, settings) for trial in grid._experiment_analysis.trials]
    finally:
        ray.shutdown()


def _ray_row(trial, settings):
    metric = settings["metric"]
    last = trial.last_result or {}
    row = {"trial": trial.trial_id, "params": {key: _plain(trial.config.get(key)) for key in settings["searched"]},
           "trial_dir": trial.local_path, "valid": last.get(f"best_{metric}"),
           "epochs_run": last.get("epoch"), "error": ""}
    result_file = os.path.join(trial.local_path or "", "run_result.json")
    if trial.status == "ERROR":
        row.update(status="error", error=_error_line(trial.error_file))
    elif os.path.isfile(result_file):
        row.update(_completed(result_file, settings))
    elif last.get("done") and row["epochs_run"]:  # Ray marks a result `done` when it stops the trial
        row.update(status="stopped", stopped_early=f"ASHA after epoch {row['epochs_run']}")
    else:  # an interrupted search: these trials run when it resumes
        row.update(status="unfinished")
    return row


def _error_line(error_file):
    """The exception line of a Ray error file (its last non-empty line)."""
    try:
        with open(error_file, encoding="utf-8", errors="replace") as handle:
            lines = [line.strip() for line in handle if line.strip()]
    except (OSError, TypeError):
        return "failed (no error file)"
    return lines[-1] if lines else "failed"


def _completed(result_file, settings):
    with open(result_file) as handle:
        result = json.load(handle)
    epochs = result.get("epochs_run")
    return {
        "status": "completed",
        "valid": result.get("best_valid_score"),
        "best_epoch": None if result.get("best_epoch") is None else result["best_epoch"] + 1,
        "epochs_run": epochs,
        "stopped_early": "stopping_step" if epochs is not None and epochs < settings["epochs"] else "no",
        "test": result.get("test_result") or {},
        "result_file": result_file,
        "seconds": result.get("fit_seconds"),
    }


def _check_same_search(experiment, settings, args, params, restoring):
    """Record the search's settings; refuse to resume a search that was started differently."""
    with open(args.params_file, encoding="utf-8") as handle:
        record = {"settings": {k: v for k, v in settings.items() if k not in ("cwd",)},
                  "space": handle.read(), "tool": args.tool, "algo": args.algo}
    path = os.path.join(experiment, SEARCH_FILE)
    if restoring and os.path.isfile(path):
        with open(path) as handle:
            previous = json.load(handle)
        changed = [key for key in ("space", "tool", "algo") if previous.get(key) != record[key]]
        changed += [f"settings.{key}" for key in record["settings"]
                    if previous["settings"].get(key) != record["settings"][key]]
        if changed:
            raise RunError(
                f"{experiment} holds a search started with different {', '.join(changed)}: run the "
                f"original command to resume it, or choose another --name/--out for a new search"
            )
    os.makedirs(experiment, exist_ok=True)
    with open(path, "w") as handle:
        json.dump(record, handle, indent=2)


# ---- hyperopt, through RecBole's HyperTuning ---------------------------------------------------
def _startup_trials(trials):
    """Random trials before TPE models the results: hyperopt's default (20) would make every
    search of up to 20 trials a random one; half the budget, at least 2 and at most 20."""
    return max(2, min(20, trials // 2))


def _progress(line, stream):
    """One line per trial, printed around hyperopt's progress bar (a tqdm bar)."""
    from tqdm import tqdm

    tqdm.write(line, file=stream)
    stream.flush()


def run_hyperopt(args, params, settings, out):
    import hyperopt
    from functools import partial
    from hyperopt import tpe
    from recbole.trainer import HyperTuning

    name = args.name or f"hyperopt-{args.algo}-{settings['model']}-{settings['dataset']}-{time.strftime('%Y%m%d-%H%M%S')}"
    experiment = os.path.join(out, name)
    if os.path.exists(experiment):
        raise RunError(f"{experiment} exists: hyperopt searches do not resume; choose another --name")
    _check_same_search(experiment, settings, args, params, restoring=False)
    progress, rows = sys.stdout, []
    metric, mode = settings["metric"], settings["mode"]
    total = grid_size(params) if args.algo == "exhaustive" else args.trials

    def objective(config_dict, fixed_config_file_list=None):
        number = len(rows) + 1
        trial_id = f"{number:04d}"
        params_now = {key: _plain(config_dict[key]) for key in settings["searched"]}
        trial_dir = os.path.join(experiment, f"trial_{trial_id}")
        row = {"trial": trial_id, "params": params_now, "trial_dir": trial_dir, "error": ""}
        rows.append(row)
        gpu_ids = [] if args.gpus_per_trial == 0 else None
        start = time.time()
        try:
            result = run_trial(settings, params_now, trial_dir, gpu_ids=gpu_ids)
        except Exception as error:
            row.update(status="error", error=f"{type(error).__name__}: {error}".splitlines()[0])
            _progress(f"[{number}/{total}] trial_{trial_id} error: {row['error']} | {_format_params(params_now)}",
                      progress)
            raise
        row.update(_completed(result["result_file"], settings))
        best = None
        for done in rows:
            if done.get("valid") is not None and _better(done["valid"], best, mode):
                best = done["valid"]
        _progress(f"[{number}/{total}] trial_{trial_id} {metric} {row['valid']:.4f} (best {best:.4f}), "
                  f"test {row['test'].get(metric, float('nan')):.4f}, {row['epochs_run']} epochs, "
                  f"{time.time() - start:.0f}s | {_format_params(params_now)}", progress)
        return {**result, "valid_score_bigger": mode == "max"}

    class Tuning(HyperTuning):
        """RecBole's HyperTuning with two changes for long searches: a trial that raises is
        recorded as failed (hyperopt's STATUS_FAIL) and the search goes on, instead of ending;
        RecBole's multi-line prints per trial give way to the objective's one line."""

        def trial(self, params):
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    return super().trial(params)
            except Exception:
                return {"status": hyperopt.STATUS_FAIL, "loss": None}

    algo = partial(tpe.suggest, n_startup_jobs=_startup_trials(args.trials)) if args.algo == "bayes" else args.algo
    tuning = Tuning(objective, algo=algo, params_file=args.params_file,
                    fixed_config_file_list=settings["config_files"], max_evals=args.trials,
                    early_stop=args.trials + 1)  # RecBole's default ends a search after 10 trials without progress
    seed_before = os.environ.get("HYPEROPT_FMIN_SEED")
    os.environ["HYPEROPT_FMIN_SEED"] = str(settings["seed"])  # hyperopt's own way to seed fmin
    try:
        tuning.run()
    except hyperopt.exceptions.AllTrialsFailed:
        pass
    except KeyboardInterrupt:
        print("interrupted: writing the results so far", file=progress, flush=True)
    finally:
        if seed_before is None:
            os.environ.pop("HYPEROPT_FMIN_SEED", None)
        else:
            os.environ["HYPEROPT_FMIN_SEED"] = seed_before
    return experiment, rows


# ---- results ------------------------------------------------------------------------------
def _format_value(value, short=False):
    if isinstance(value, float):
        return f"{value:.4g}" if short else repr(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return "" if value is None else str(value)


def _format_params(params):
    return ", ".join(f"{key}={_format_value(value, short=True)}" for key, value in params.items())


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
            writer.writerow([rank, row["trial"], row.get("status", ""), _format_value(row.get("valid")),
                             _format_value(row.get("best_epoch")), _format_value(row.get("epochs_run")),
                             row.get("stopped_early", "")]
                            + [_format_value(row.get("test", {}).get(key)) for key in test_keys]
                            + [_format_value(row["params"].get(key)) for key in settings["searched"]]
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
        cells = [str(rank), row["trial"], _format_value(row.get("valid"), short=True),
                 _format_value(row.get("test", {}).get(metric), short=True), _format_value(row.get("best_epoch")),
                 _format_value(row.get("epochs_run")), row.get("stopped_early", ""), status,
                 _format_params(row["params"])]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    with open(md_path, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return csv_path, md_path


def _read_recbole_yaml(path):
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
        config.update(_read_recbole_yaml(config_file))
    for key in ("checkpoint_dir", "result_file"):
        config.pop(key, None)
    config.update(settings["fixed"])
    config["seed"] = settings["seed"]
    config.update(_plain(best["params"]))
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


# ---- command line ---------------------------------------------------------------------------
def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m adrec_recbole.tune", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--params_file", required=True, help="search space in RecBole's format (e.g. hyper.test)")
    parser.add_argument("--dataset", "-d", default="Scientific")
    parser.add_argument("--model", "-m", default="ADRec", help="ADRec or a RecBole model name")
    parser.add_argument("--config_files", default=None, help="space-separated yaml files applied to every trial")
    parser.add_argument("--data_path", default=None, help="folder holding the dataset folder (default: config)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per trial (default: config, 300)")
    parser.add_argument("--metric", default=None, help="validation metric to optimise (default: config valid_metric)")
    parser.add_argument("--seed", type=int, default=None, help="seed of every trial and of the sampler (default: config)")
    parser.add_argument("--tool", choices=TOOLS, default="ray")
    parser.add_argument("--algo", choices=ALGOS, default="random",
                        help="random sampling, bayes (TPE), or exhaustive (every combination of the choices)")
    parser.add_argument("--trials", type=int, default=16, help="number of trials (exhaustive: an upper bound)")
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


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        if args.trials < 1 or args.cpus_per_trial < 1 or args.gpus_per_trial < 0:
            raise RunError("--trials and --cpus_per_trial must be >= 1 and --gpus_per_trial >= 0")
        if args.tool == "hyperopt" and (args.resume or args.address):
            raise RunError("--resume and --address are for --tool ray")
        params = read_space(args.params_file)
        if args.algo == "exhaustive" and grid_size(params) > args.trials:
            raise RunError(f"exhaustive search: the choices make {grid_size(params)} combinations, more than "
                           f"--trials {args.trials}; raise --trials or use --algo random/bayes")
        settings = search_settings(args, params)
        print("search space:\n  " + "\n  ".join(param.describe() for param in params), flush=True)
        out = os.path.abspath(args.out)
        os.makedirs(out, exist_ok=True)
        runner = run_ray if args.tool == "ray" else run_hyperopt
        experiment, rows = runner(args, params, settings, out)
    except RunError as error:
        sys.exit(f"error: {error}")
    rows = sort_rows(rows, settings["mode"])
    csv_path, md_path = write_tables(rows, settings, out, experiment)
    best_path, best = write_best_config(rows, settings, out)
    counts = {}
    for row in rows:
        counts[row.get("status", "?")] = counts.get(row.get("status", "?"), 0) + 1
    print(f"trials: {', '.join(f'{n} {status}' for status, n in sorted(counts.items()))}")
    print(f"results: {md_path} and {csv_path}")
    if counts.get("unfinished"):
        print(f"{counts['unfinished']} trials unfinished: run the same command again to resume the search")
    if best is None:
        print("no trial completed: no best_config.yaml")
        return 1
    print(f"best: trial {best['trial']} valid {settings['metric']} {best['valid']} | {_format_params(best['params'])}")
    print(f"best config: {best_path}")
    return 0


if __name__ == "__main__":
    # Run the function of the importable module, not of __main__: Ray pickles __main__'s
    # functions by value, the module's by reference (workers import it).
    from adrec_recbole.tune import main as _main

    sys.exit(_main())
