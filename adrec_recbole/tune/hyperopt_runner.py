"""hyperopt runner: RecBole's ``HyperTuning`` in this process, one trial at a time.

A trial that raises is recorded and the search goes on; ``bayes`` (TPE) samples the first half of
the trials (at most 20) at random; one line per trial replaces RecBole's prints.
"""
import contextlib
import io
import os
import sys
import time

from adrec_recbole.quick_start import RunError
from adrec_recbole.tune.report import format_params
from adrec_recbole.tune.space import grid_size, plain_value
from adrec_recbole.tune.trials import better, check_same_search, completed_row, run_trial


def startup_trials(trials):
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
    check_same_search(experiment, settings, args, params, restoring=False)
    progress, rows = sys.stdout, []
    metric, mode = settings["metric"], settings["mode"]
    total = grid_size(params) if args.algo == "exhaustive" else args.trials

    def objective(config_dict, fixed_config_file_list=None):
        number = len(rows) + 1
        trial_id = f"{number:04d}"
        params_now = {key: plain_value(config_dict[key]) for key in settings["searched"]}
        trial_dir = os.path.join(experiment, f"trial_{trial_id}")
        row = {"trial": trial_id, "params": params_now, "trial_dir": trial_dir, "error": ""}
        rows.append(row)
        gpu_ids = [] if args.gpus_per_trial == 0 else None
        start = time.time()
        try:
            result = run_trial(settings, params_now, trial_dir, gpu_ids=gpu_ids)
        except Exception as error:
            row.update(status="error", error=f"{type(error).__name__}: {error}".splitlines()[0])
            _progress(f"[{number}/{total}] trial_{trial_id} error: {row['error']} | {format_params(params_now)}",
                      progress)
            raise
        row.update(completed_row(result["result_file"], settings))
        best = None
        for done in rows:
            if done.get("valid") is not None and better(done["valid"], best, mode):
                best = done["valid"]
        _progress(f"[{number}/{total}] trial_{trial_id} {metric} {row['valid']:.4f} (best {best:.4f}), "
                  f"test {row['test'].get(metric, float('nan')):.4f}, {row['epochs_run']} epochs, "
                  f"{time.time() - start:.0f}s | {format_params(params_now)}", progress)
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

    algo = partial(tpe.suggest, n_startup_jobs=startup_trials(args.trials)) if args.algo == "bayes" else args.algo
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

