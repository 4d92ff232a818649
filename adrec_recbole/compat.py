"""Fixes for RecBole 1.2.1 on current library versions, kept in one place.

Each fix is applied once, on import of this module (the run path, the model, the benchmark
worker and the tuning trainable import it, so Ray workers get it too). Each one changes what a
single RecBole module sees — a view of ``torch``, ``pandas`` or ``numpy`` with an attribute or
two replaced — never the library itself.

* Loading policy (:mod:`adrec_recbole.safe_load`): no file that RecBole's trainer or the run
  path reads can run code.
  RecBole pickles its ``Config`` into checkpoints and reloads them with ``torch.load``, and
  unpickles saved datasets and dataloaders whenever such a file exists, so a crafted file left
  in ``checkpoint_dir`` (or swapped for ``best.pth`` during training) would run its code.
  RecBole's trainer module sees a ``torch`` whose ``save`` writes checkpoints of tensors and
  plain types only (``config`` as a plain dict) and whose ``load`` always uses
  ``weights_only=True`` (torch's default; RecBole PR #2155 is the upstream issue): a file that
  needs arbitrary unpickling is refused with ``safe_load.UnsafeCheckpointError``, one line
  naming the file, unless the config of the trainer loading it sets ``trust_checkpoint:
  True`` (read from the calling trainer, so one trusted trainer makes no other load unsafe;
  that setting runs the file's code). The run path never unpickles datasets or dataloaders: it
  builds them from the data files with ``safe_load.create_dataset_without_pickles`` and
  ``safe_load.data_preparation_without_pickles`` and names an ignored file in one warning.
* Multi-process training (:mod:`adrec_recbole.distributed`). RecBole 1.2.1's
  ``Config._init_device`` hard-codes the ``nccl`` backend and asserts GPUs for a process of a
  multi-process run, so nothing of it runs on a CPU, and its trainer passes ``device_ids`` to
  ``DistributedDataParallel``, which torch refuses for a CPU module. The run path builds its
  settings with :class:`Config`, RecBole's ``Config`` whose ``_init_device`` is RecBole's own
  in a single process and :func:`distributed.init_process` in a process of a multi-process run
  (the backend follows the device: ``nccl`` on GPUs, ``gloo`` on the CPU); RecBole's trainer
  module sees :func:`distributed.data_parallel` as its ``DistributedDataParallel``. RecBole's
  reduction of evaluation metrics across processes is replaced where the run path builds its
  trainer (:class:`distributed.ExactEvaluationMixin`, with the reason there).
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
* RecBole's ``ensure_dir`` checks ``os.path.exists`` and then calls ``os.makedirs``: two
  processes that start together in one working directory (the benchmark's ``--jobs 2``
  workers, parallel tuning trials) can both see ``./log/`` missing, and the slower one fails
  with ``FileExistsError`` before training. RecBole's logger, trainer, dataset and data-utils
  modules see an ``ensure_dir`` that is ``os.makedirs(path, exist_ok=True)``.
* pandas 2.2 warns (FutureWarning) on every dataset load about idioms inside RecBole's
  ``dataset.py`` that pandas 3 will change; pandas is pinned below 2.3 (README), so warnings
  from RecBole's modules are silenced instead of repeated in every log.
"""
import csv
import importlib.metadata
import os
import types
import warnings

import numpy
import pandas
import recbole.data.dataset.dataset as _recbole_dataset
import recbole.data.utils as _recbole_data_utils
import recbole.trainer.hyper_tuning as _recbole_hyper_tuning
import recbole.trainer.trainer as _recbole_trainer
import recbole.utils.logger as _recbole_logger
import torch
from recbole.config import Config as _RecBoleConfig

from adrec_recbole import distributed, safe_load


class _ModuleView(types.ModuleType):
    """A module that is ``base`` except for the attributes given as keywords."""

    def __init__(self, base, **replaced):
        super().__init__(base.__name__)
        self._base = base
        self.__dict__.update(replaced)

    def __getattr__(self, name):  # called only for attributes not replaced
        return getattr(self._base, name)


def _read_plain_tsv(*args, **kwargs):
    kwargs.setdefault("quoting", csv.QUOTE_NONE)
    kwargs.setdefault("keep_default_na", False)
    kwargs.setdefault("na_values", [""])
    return pandas.read_csv(*args, **kwargs)


def ensure_dir(path):
    """RecBole's ``ensure_dir`` without the gap between its check and its ``makedirs``."""
    os.makedirs(path, exist_ok=True)


def _hyperopt_samples_with_generator():
    try:
        version = importlib.metadata.version("hyperopt").split(".")
        major, minor, patch = (version + ["0", "0"])[:3]
        return (int(major), int(minor), int("".join(c for c in patch if c.isdigit()) or 0)) >= (0, 2, 7)
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return False


# ---- multi-process training: process group and device by device type, DDP on the CPU ------
class Config(_RecBoleConfig):
    """RecBole's ``Config``; in a process of a multi-process run (``local_rank`` given) its
    device and process group come from :func:`distributed.init_process` instead of RecBole's
    nccl-only code. A single process is configured by RecBole's own ``_init_device``."""

    def _init_device(self):
        if "local_rank" not in self.final_config_dict:
            return super()._init_device()
        return distributed.init_process(self.final_config_dict)


if _recbole_trainer.DistributedDataParallel is not distributed.data_parallel:
    _recbole_trainer.DistributedDataParallel = distributed.data_parallel
# ---------------------------------------------------------------------------------------------


warnings.filterwarnings("ignore", category=FutureWarning, module=r"recbole\.")

if not isinstance(_recbole_trainer.torch, _ModuleView):
    _recbole_trainer.torch = _ModuleView(
        torch, load=safe_load.load_trainer_checkpoint, save=safe_load.save_trainer_checkpoint
    )
if not isinstance(_recbole_dataset.pd, _ModuleView):
    _recbole_dataset.pd = _ModuleView(pandas, read_csv=_read_plain_tsv)
for _module in (_recbole_logger, _recbole_trainer, _recbole_dataset, _recbole_data_utils):
    _module.ensure_dir = ensure_dir
if _hyperopt_samples_with_generator() and not isinstance(_recbole_hyper_tuning.np, _ModuleView):
    _recbole_hyper_tuning.np = _ModuleView(
        numpy, random=_ModuleView(numpy.random, RandomState=numpy.random.default_rng)
    )


# --- RecBole's load_data_and_model on this project's checkpoints ---------------------------
# ``recbole.quick_start.load_data_and_model(model_file)`` + ``recbole.utils.case_study.full_sort_topk``
# is RecBole's way back from a checkpoint. On ours it fails twice: torch >= 2.6 loads weights
# only by default, and RecBole's pickled Config is refused (our checkpoints hold a plain dict
# instead, which RecBole's function cannot use as a Config); and ``get_model`` knows only
# RecBole's own models (for ADRec it ends in "No module named 'lightgbm'"). RecBole's function
# is replaced by one with its signature and return value that reads the checkpoint as
# ``adrec_recbole.inference.load_checkpoint`` does (weights only, dataset and loaders rebuilt from
# the data files, plugin models known). recbole.quick_start imports ray (seconds), so it is not
# imported here: the replacement is installed when RecBole's module is imported, or now if it
# already was. (Imports of this section are kept in it, apart from the fixes above.)
import importlib.abc  # noqa: E402
import importlib.machinery  # noqa: E402
import sys  # noqa: E402


def load_data_and_model(model_file):
    """RecBole's ``load_data_and_model`` for this project's checkpoints: ``(config, model, dataset,
    train_data, valid_data, test_data)`` (:func:`adrec_recbole.inference.load_checkpoint`)."""
    from adrec_recbole.inference import load_checkpoint

    return tuple(load_checkpoint(model_file))


def _install_load_data_and_model(module):
    module.load_data_and_model = load_data_and_model


class _AfterImport(importlib.abc.MetaPathFinder):
    """Calls ``install(module)`` right after module ``name`` is executed, before anyone imports from it."""

    def __init__(self, name, install):
        self.name, self.install = name, install

    def find_spec(self, fullname, path, target=None):
        if fullname != self.name:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            exec_module, install = spec.loader.exec_module, self.install

            def exec_then_install(module):
                exec_module(module)
                install(module)

            spec.loader.exec_module = exec_then_install
        return spec


_QUICK_START_MODULES = ("recbole.quick_start.quick_start", "recbole.quick_start")
if not any(isinstance(finder, _AfterImport) for finder in sys.meta_path):
    for _name in _QUICK_START_MODULES:
        if _name in sys.modules:
            _install_load_data_and_model(sys.modules[_name])
    if _QUICK_START_MODULES[0] not in sys.modules:
        sys.meta_path.insert(0, _AfterImport(_QUICK_START_MODULES[0], _install_load_data_and_model))
