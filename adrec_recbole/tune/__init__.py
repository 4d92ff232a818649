"""Hyperparameter search for ADRec (or any RecBole model) with Ray Tune or RecBole's HyperTuning.

    python -m adrec_recbole.tune --params_file hyper.test --dataset Scientific --tool ray \\
        --trials 16 --cpus_per_trial 1 --gpus_per_trial 0 --epochs 5 --out tuning/
    python -m adrec_recbole.tune --params_file hyper.test --dataset Scientific --tool hyperopt \\
        --algo bayes --trials 16 --epochs 5 --out tuning/
    python run_hyper.py --params_file=hyper.test --model=ADRec --dataset=Scientific --max_evals=16 --epochs=5

The search space is a file in RecBole's format (:mod:`~adrec_recbole.tune.space`); ADRec's,
``hyper.test``, ships in the package and is found by that name from any folder. ``run_hyper.py``
is RecBole's script name and flags for the same search (RecBole's own ``run_hyper.py`` cannot run
ADRec: it looks models up by name in RecBole's package).

Written to ``--out`` (:mod:`~adrec_recbole.tune.report`): ``results.csv`` and ``results.md`` (every
trial, sorted by the valid metric: trial id, parameters, best valid metric, test metrics, epochs
run, stopped early?, status or error), ``best_config.yaml`` (reproduce the best completed trial
with ``python run_recbole.py --model=ADRec --dataset=NAME --config_files=OUT/best_config.yaml``),
and one folder per search holding one folder per trial (``checkpoints/``, ``run_result.json``,
``trial.log``; :mod:`~adrec_recbole.tune.trials`).

``--tool hyperopt`` (:mod:`~adrec_recbole.tune.hyperopt_runner`) runs RecBole's ``HyperTuning`` in
this process, one trial at a time; ``--tool ray`` (:mod:`~adrec_recbole.tune.ray_runner`) runs
trials in parallel on a local or existing Ray cluster, reports every epoch to ASHA and resumes an
interrupted search.
"""
import importlib

#: the package's public names and their modules, imported on first use (PEP 562) so that
#: ``run_hyper.py --help`` (which reads :mod:`~adrec_recbole.tune.options`) needs no torch
_EXPORTS = {"main": "cli", "run_search": "cli", "Param": "space", "grid_size": "space", "ray_space": "space",
            "read_space": "space"}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
