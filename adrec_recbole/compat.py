"""Fixes for RecBole 1.2.1 on current library versions, kept in one place.

Each fix is applied once, on import of this module (``adrec_recbole`` imports it first).

* torch >= 2.6 loads checkpoints with ``weights_only=True``. RecBole's checkpoints hold its
  ``Config`` object, so ``Trainer.evaluate(load_best_model=True)`` and
  ``Trainer.resume_checkpoint`` fail ("Unsupported operand 149"; RecBole PR #2155, open).
  We give RecBole's trainer module — and only that module — a ``torch`` whose ``load``
  defaults to ``weights_only=False``. Those calls read the checkpoints the same trainer wrote
  into its own ``checkpoint_dir``; do not point ``model_file`` at checkpoints you do not
  trust, since unpickling them can execute code. Because the fix is applied on import, it
  also reaches Ray workers, which import this package to run a trial.
* RecBole reads atomic files with ``pandas.read_csv`` defaults, which treat ``"`` as a quote
  (an item title starting with ``"`` swallows the following tabs and lines) and turn ``NA``,
  ``null``, ``None``... into missing values. The canonical layout is plain unquoted TSV, and
  ADRec reads item text that way (:mod:`adrec_recbole.text`); so that RecBole's feature models
  (FDSA) get the very same text, RecBole's dataset module — only that module — gets a
  ``pandas`` whose ``read_csv`` defaults to ``quoting=QUOTE_NONE``, ``keep_default_na=False``,
  ``na_values=[""]`` (an empty field is still missing). Explicit arguments still win.
* pandas 2.2 warns (FutureWarning) on every dataset load about idioms inside RecBole's
  ``dataset.py`` that pandas 3 will change; pandas is pinned below 2.3 (see README), so the
  warnings from RecBole's modules are silenced instead of repeated in every log.
"""
import csv
import types
import warnings

import pandas
import torch
import recbole.data.dataset.dataset as _recbole_dataset
import recbole.trainer.trainer as _recbole_trainer


class _TorchLoadingOwnCheckpoints(types.ModuleType):
    """``torch`` as seen by RecBole's trainer: everything delegated, ``load`` trusting."""

    def __getattr__(self, name):
        return getattr(torch, name)

    @staticmethod
    def load(f, *args, **kwargs):
        kwargs.setdefault("weights_only", False)
        return torch.load(f, *args, **kwargs)


class _PandasReadingPlainTsv(types.ModuleType):
    """``pandas`` as seen by RecBole's dataset module: everything delegated, unquoted ``read_csv``."""

    def __getattr__(self, name):
        return getattr(pandas, name)

    @staticmethod
    def read_csv(*args, **kwargs):
        kwargs.setdefault("quoting", csv.QUOTE_NONE)
        kwargs.setdefault("keep_default_na", False)
        kwargs.setdefault("na_values", [""])
        return pandas.read_csv(*args, **kwargs)


warnings.filterwarnings("ignore", category=FutureWarning, module=r"recbole\.")

if not isinstance(_recbole_trainer.torch, _TorchLoadingOwnCheckpoints):
    _recbole_trainer.torch = _TorchLoadingOwnCheckpoints("torch")
if not isinstance(_recbole_dataset.pd, _PandasReadingPlainTsv):
    _recbole_dataset.pd = _PandasReadingPlainTsv("pandas")


# --- hyperopt >= 0.2.7 and RecBole's exhaustive search (RecBole issue #1868, open) -----------
# Since 0.2.7 hyperopt's samplers draw with numpy's ``Generator`` API (``rng.integers``), but
# ``recbole.trainer.hyper_tuning.exhaustive_search`` seeds them with ``np.random.RandomState``,
# so ``HyperTuning(algo='exhaustive')`` fails: "'RandomState' object has no attribute
# 'integers'". That module, and only that module, sees a ``numpy`` whose
# ``random.RandomState(seed)`` is ``np.random.default_rng(seed)`` (the same seed gives the same
# draws on every run). With hyperopt <= 0.2.5, which still uses RandomState, nothing changes.
import importlib.metadata as _metadata

import numpy as _np
import recbole.trainer.hyper_tuning as _recbole_hyper_tuning


def _hyperopt_samples_with_generator():
    try:
        major, minor, patch = (_metadata.version("hyperopt").split(".") + ["0", "0"])[:3]
        return (int(major), int(minor), int("".join(c for c in patch if c.isdigit()) or 0)) >= (0, 2, 7)
    except (_metadata.PackageNotFoundError, ValueError):
        return False


class _NumpyRandomWithGenerator(types.ModuleType):
    """``numpy.random`` with ``RandomState`` meaning ``default_rng``; the rest delegated."""

    RandomState = staticmethod(_np.random.default_rng)

    def __getattr__(self, name):
        return getattr(_np.random, name)


class _NumpyForExhaustiveSearch(types.ModuleType):
    """``numpy`` as seen by RecBole's hyper_tuning module: only ``random`` differs."""

    random = _NumpyRandomWithGenerator("numpy.random")

    def __getattr__(self, name):
        return getattr(_np, name)


if _hyperopt_samples_with_generator() and not isinstance(_recbole_hyper_tuning.np, _NumpyForExhaustiveSearch):
    _recbole_hyper_tuning.np = _NumpyForExhaustiveSearch("numpy")
