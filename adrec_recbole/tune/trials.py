"""What every trial shares: the search's settings (checked once, in the driver) and one trial run.

A trial is :func:`adrec_recbole.quick_start.run` with the searched values over the search's
settings, its own checkpoint folder, result file and log, and the devices it was given (RecBole's
``Config`` sets ``CUDA_VISIBLE_DEVICES``, which may not leak between trials).
"""
import contextlib
import difflib
import json
import logging
import os

from adrec_recbole.paths import resolve_user_file
from adrec_recbole.quick_start import RunError, build_config, prepare_data, run
from adrec_recbole.tune.space import plain_value

PATH_KEYS = ("plm_cache_dir", "plm_path")  # made absolute for trials when they name local paths
SEARCH_FILE = "search.json"


@contextlib.contextmanager
def _clean_process_state():
    """RecBole's Config sets CUDA_VISIBLE_DEVICES from ``gpu_id``: that may not leak into or out
    of a trial or the driver. (It would also read ``sys.argv``: the run path hides that.)"""
    devices = os.environ.get("CUDA_VISIBLE_DEVICES")
    try:
        yield
    finally:
        if devices is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = devices


def search_settings(args, params, other_settings=None):
    """Everything a trial needs besides its parameters, checked once in the driver (JSON-able).

    ``other_settings``: more settings given on the command line (``run_hyper.py --key=value``), as
    RecBole's flags (strings, converted by RecBole); their names must be settings of the run.
    """
    config_files = [os.path.abspath(resolve_user_file(path) or path)
                    for path in (args.config_files.split() if args.config_files else [])]
    other_settings = dict(other_settings or {})
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
        config = build_config(args.model, args.dataset, config_files, {**other_settings, **fixed},
                              flag_names=list(other_settings))
    fixed = {**{key: plain_value(config[key]) for key in other_settings}, **fixed}  # as RecBole read them
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
        **settings["fixed"], **settings["paths"], **plain_value(params),
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


def better(score, best, mode):
    """Whether ``score`` beats ``best`` (None: nothing yet) in direction ``mode`` (max/min)."""
    return best is None or (score > best if mode == "max" else score < best)


def completed_row(result_file, settings):
    """The results-table fields of a trial that finished, from its run's result file."""
    with open(result_file) as handle:
        result = json.load(handle)
    epochs = result.get("epochs_run")
    return {
        "status": "completed",
        "valid": result.get("best_valid_score"),
        "best_epoch": None if result.get("best_epoch") is None else result["best_epoch"] + 1,
        "epochs_run": epochs,
        "stopped_early": "stopping_step" if epochs is not None and epochs < settings["epochs"] else "no",
        "valid_result": result.get("best_valid_result") or {},
        "test": result.get("test_result") or {},
        "result_file": result_file,
        "seconds": result.get("fit_seconds"),
    }


def check_same_search(experiment, settings, args, params, restoring):
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

