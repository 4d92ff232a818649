"""Ray Tune runner: trials in parallel on a local or existing Ray cluster, reported every epoch.

RecBole's own Ray path (``run_hyper.py --tool=Ray``) fails on this stack in several ways; here
each trial requests exactly ``--cpus_per_trial``/``--gpus_per_trial`` and runs on the devices Ray
gave it (RecBole's ``gpu_id`` would overwrite them); every path is absolute and Ray does not change
directory; workers import this package (PYTHONPATH in the runtime environment), which applies
:mod:`adrec_recbole.compat`; each trial reports every epoch (ASHA stops weak trials after
``--grace_period`` epochs) and has its own checkpoint folder and result file (parallel trials
otherwise share checkpoint names and load each other's weights); a trial that raises is recorded
as an error while the others finish; an interrupted search resumes (``--resume``, or by running
the same command again).
"""
import os

from adrec_recbole.paths import PACKAGE_DIR
from adrec_recbole.quick_start import RunError
from adrec_recbole.tune.hyperopt_runner import startup_trials
from adrec_recbole.tune.space import plain_value, ray_space
from adrec_recbole.tune.trials import better, check_same_search, completed_row, run_trial


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
        if better(valid_score, state["best"], mode):
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
    """Environment of every Ray worker: this package importable (the folder it was imported from,
    a clone or site-packages), one BLAS thread pool per trial."""
    python_path = os.pathsep.join(filter(None, [os.path.dirname(PACKAGE_DIR), os.environ.get("PYTHONPATH")]))
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
    check_same_search(experiment, settings, args, params, restoring)

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
                    n_initial_points=startup_trials(args.trials), random_state_seed=seed,
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
    row = {"trial": trial.trial_id, "params": {key: plain_value(trial.config.get(key)) for key in settings["searched"]},
           "trial_dir": trial.local_path, "valid": last.get(f"best_{metric}"),
           "epochs_run": last.get("epoch"), "error": ""}
    result_file = os.path.join(trial.local_path or "", "run_result.json")
    if trial.status == "ERROR":
        row.update(status="error", error=_error_line(trial.error_file))
    elif os.path.isfile(result_file):
        row.update(completed_row(result_file, settings))
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

