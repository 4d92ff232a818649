"""Fixes for RecBole 1.2.1 on current library versions, kept in one place.

Each fix is applied once, on import of this module (the run path, the model, the benchmark
worker and the tuning trainable import it, so Ray workers get it too). Each one changes what a
single RecBole module sees — a view of ``torch``, ``pandas`` or ``numpy`` with one attribute
replaced — never the library itself.

* torch >= 2.6 loads checkpoints with ``weights_only=True``. RecBole's checkpoints hold its
  ``Config`` object, so ``Trainer.evaluate(load_best_model=True)`` and
  ``Trainer.resume_checkpoint`` fail ("Unsupported operand 149"; RecBole PR #2155, open).
  RecBole's trainer module sees a ``torch.load`` that defaults to ``weights_only=False``. Those
  calls read the checkpoints the same trainer wrote into its own ``checkpoint_dir``; do not
  point ``model_file`` at checkpoints you do not trust: unpickling them can execute code.
* RecBole reads atomic files with ``pandas.read_csv`` defaults, which treat ``"`` as a quote
  (an item title starting with ``"`` swallows the following tabs and lines) and turn ``NA``,
  ``null``, ``None``... into missing values. The canonical layout is plain unquoted TSV and
  ADRec reads item text that way (:mod:`adrec_recbole.text`); so that RecBole's feature models
  (FDSA) get the very same text, RecBole's dataset module sees a ``read_csv`` that defaults to
  ``quoting=QUOTE_NONE``, ``keep_default_na=False``, ``na_values=[""]`` (an empty field is
  still missing). Explicit arguments still win.
* hyperopt >= 0.2.7 samples with numpy's ``Generator`` API (``rng.integers``) but RecBole's
  ``exhaustive_search`` seeds it with ``np.random.RandomState``, so
  ``HyperTuning(algo='exhaustive')`` fails: "'RandomState' object has no attribute 'integers'"
  (RecBole issue #1868, open). RecBole's hyper_tuning module sees a ``numpy.random.RandomState``
  that is ``numpy.random.default_rng`` (same seed, same draws). Older hyperopt: unchanged.
* pandas 2.2 warns (FutureWarning) on every dataset load about idioms inside RecBole's
  ``dataset.py`` that pandas 3 will change; pandas is pinned below 2.3 (README), so warnings
  from RecBole's modules are silenced instead of repeated in every log.
"""
import csv
import importlib.metadata
import types
import warnings

import numpy
import pandas
import recbole.data.dataset.dataset as _recbole_dataset
import recbole.trainer.hyper_tuning as _recbole_hyper_tuning
import recbole.trainer.trainer as _recbole_trainer
import torch


class _ModuleView(types.ModuleType):
    """A module that is ``base`` except for the attributes given as keywords."""

    def __init__(self, base, **replaced):
        super().__init__(base.__name__)
        self._base = base
        self.__dict__.update(replaced)

    def __getattr__(self, name):  # called only for attributes not replaced
        return getattr(self._base, name)


def _load_own_checkpoint(f, *args, **kwargs):
    kwargs.setdefault("weights_only", False)
    return torch.load(f, *args, **kwargs)


def _read_plain_tsv(*args, **kwargs):
    kwargs.setdefault("quoting", csv.QUOTE_NONE)
    kwargs.setdefault("keep_default_na", False)
    kwargs.setdefault("na_values", [""])
    return pandas.read_csv(*args, **kwargs)


def _hyperopt_samples_with_generator():
    try:
        version = importlib.metadata.version("hyperopt").split(".")
        major, minor, patch = (version + ["0", "0"])[:3]
        return (int(major), int(minor), int("".join(c for c in patch if c.isdigit()) or 0)) >= (0, 2, 7)
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return False


warnings.filterwarnings("ignore", category=FutureWarning, module=r"recbole\.")

if not isinstance(_recbole_trainer.torch, _ModuleView):
    _recbole_trainer.torch = _ModuleView(torch, load=_load_own_checkpoint)
if not isinstance(_recbole_dataset.pd, _ModuleView):
    _recbole_dataset.pd = _ModuleView(pandas, read_csv=_read_plain_tsv)
if _hyperopt_samples_with_generator() and not isinstance(_recbole_hyper_tuning.np, _ModuleView):
    _recbole_hyper_tuning.np = _ModuleView(
        numpy, random=_ModuleView(numpy.random, RandomState=numpy.random.default_rng)
    )
