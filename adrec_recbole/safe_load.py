"""One loading policy: no checkpoint, saved dataset or saved dataloader that RecBole's trainer
or the run path reads can run code, unless the user says the file is trusted.

Python's pickle runs whatever a file tells it to, so a crafted ``.pth`` left where a program
looks for one takes over the process. RecBole 1.2.1 unpickles three kinds of files:

* **Checkpoints** (``Trainer.evaluate(load_best_model=True)`` or ``model_file=...``,
  ``Trainer.resume_checkpoint``). RecBole pickles its ``Config`` object into them, so they
  cannot be read with torch's weights-only loader. Here every checkpoint a trainer writes holds
  only tensors and plain types (:func:`plain_checkpoint`: ``config`` becomes a plain dict of
  the final settings, enums and devices as strings), and every checkpoint RecBole's trainer
  reads goes through :func:`load_trainer_checkpoint`: ``torch.load(weights_only=True)``. A
  file that needs arbitrary unpickling (a checkpoint written by RecBole without this plugin,
  or a crafted one) is refused with :class:`UnsafeCheckpointError`, one line naming the file,
  unless the loading trainer's config has ``trust_checkpoint: True`` — which runs the file's
  code. :mod:`adrec_recbole.compat` gives RecBole's trainer module a ``torch`` whose ``save``
  and ``load`` are these two functions.
* **Saved datasets** (``create_dataset`` reads ``dataset_save_path`` or
  ``{checkpoint_dir}/{dataset}-{DatasetClass}.pth``) and **saved dataloaders**
  (``data_preparation`` reads ``dataloaders_save_path`` or
  ``{checkpoint_dir}/{dataset}-for-{model}-dataloader.pth``) whenever such a file exists. The
  run path builds both from the data files every time instead
  (:func:`create_dataset_without_pickles`, :func:`data_preparation_without_pickles`): for the
  datasets of this project that takes seconds, and a run never silently reuses an old split of
  changed data. An existing file is ignored with one warning line naming it. Writing them
  (``save_dataset``, ``save_dataloaders``) stays RecBole's.

Where the trust flag comes from: RecBole calls ``torch.load`` from inside the trainer's own
``evaluate``/``resume_checkpoint``, so :func:`load_trainer_checkpoint` reads
``trust_checkpoint`` from the config of the trainer that called it (``self`` of the calling
frame). No global switch: one trusted trainer never makes another trainer's loads unsafe, and
any caller that is not a trainer with a config gets the safe default.
"""
import collections
import importlib
import os
import pickle
import sys
import types
from logging import getLogger

import numpy
import recbole.data.utils as _recbole_data_utils
import torch
from recbole.utils import ModelType

TRUST_KEY = "trust_checkpoint"
_SCALARS = (bool, int, float, str, bytes, type(None))


class UnsafeCheckpointError(ValueError):
    """A checkpoint that torch's weights-only loader cannot read; the message is one line."""


# --- writing: checkpoints of tensors and plain types only ----------------------------------

def plain(value):
    """``value`` as types torch's weights-only loader reads: tensors, plain scalars, lists,
    tuples and dicts of them; enums, devices and anything else as their ``str``."""
    if type(value) in _SCALARS or isinstance(value, torch.Tensor):
        return value
    if isinstance(value, dict):
        return {key if type(key) in _SCALARS else str(key): plain(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return tuple(plain(item) for item in value)
    if isinstance(value, (list, set, frozenset)):
        return [plain(item) for item in value]
    if isinstance(value, numpy.generic):
        return value.item()
    if isinstance(value, numpy.ndarray):
        return value.tolist()
    return str(value)


def plain_config(config):
    """The settings of a RecBole ``Config`` (or of a dict) as a plain dict."""
    return plain(dict(getattr(config, "final_config_dict", config)))


def _weights_only_readable(value):
    if type(value) in _SCALARS or isinstance(value, torch.Tensor):
        return True
    if type(value) in (list, tuple):
        return all(_weights_only_readable(item) for item in value)
    if type(value) in (dict, collections.OrderedDict):
        return all(type(key) in _SCALARS and _weights_only_readable(item) for key, item in value.items())
    return False


def plain_other_parameter(other_parameter):
    """A model's ``other_parameter()`` without the values that would need unpickling. Those
    are submodules (FDSA's feature embedding: their weights are in ``state_dict`` already) and
    objects models build from the dataset when they are constructed (ItemKNN's and EASE's
    matrices); values a model changes while training (Pop's counts) are tensors and stay."""
    if other_parameter is None:
        return None
    return {key: value for key, value in other_parameter.items() if _weights_only_readable(value)}


def plain_checkpoint(state):
    """A RecBole checkpoint dict made plain: ``config`` (:func:`plain_config`),
    ``other_parameter`` (:func:`plain_other_parameter`) and the bookkeeping values (RecBole's
    ``best_valid_score`` is often a numpy scalar); ``state_dict`` and ``optimizer`` are kept."""
    state = dict(state)
    for key, value in state.items():
        if key == "config":
            state[key] = plain_config(value)
        elif key == "other_parameter":
            state[key] = plain_other_parameter(value) if isinstance(value, dict) else value
        elif key not in ("state_dict", "optimizer"):
            state[key] = plain(value)
    return state


def save_trainer_checkpoint(obj, f, *args, **kwargs):
    """``torch.save`` as RecBole's trainer module sees it: its checkpoints (dicts holding a
    ``config``) are written plain, with torch's default pickle protocol."""
    if isinstance(obj, dict) and "config" in obj:
        obj = plain_checkpoint(obj)
        kwargs.pop("pickle_protocol", None)
    torch.save(obj, f, *args, **kwargs)


# --- reading: weights only, unless the user trusts the file --------------------------------

def _file_name(f):
    if isinstance(f, (str, bytes, os.PathLike)):
        return os.fsdecode(f)
    return str(getattr(f, "name", f))


def refusal_message(f):
    """The one line that says ``f`` was refused and what to do."""
    name = " ".join(_file_name(f).split())  # one line, whatever the path holds
    return (
        f"{name}: refused to load: torch's weights-only loader cannot read it (it needs arbitrary "
        f"unpickling, which could run code, or it is damaged); add --{TRUST_KEY}=True only if you "
        "trust whoever wrote it"
    )


def load_checkpoint(f, *args, trusted=False, **kwargs):
    """``torch.load(f)`` with ``weights_only=True``; :class:`UnsafeCheckpointError` when that
    refuses the file. ``trusted=True`` loads it in full: that runs the file's code."""
    kwargs["weights_only"] = not trusted
    try:
        return torch.load(f, *args, **kwargs)
    except pickle.UnpicklingError:
        if trusted:
            raise
        raise UnsafeCheckpointError(refusal_message(f)) from None


def trusts_checkpoints(config):
    """Whether ``config`` (a RecBole ``Config`` or a dict) says ``trust_checkpoint: True``."""
    try:
        return config is not None and config[TRUST_KEY] is True
    except (KeyError, TypeError, IndexError):
        return False


def load_trainer_checkpoint(f, *args, **kwargs):
    """``torch.load`` as RecBole's trainer module sees it: :func:`load_checkpoint`, trusted
    only when the config of the trainer calling it (``Trainer.evaluate``,
    ``Trainer.resume_checkpoint``) sets ``trust_checkpoint: True``."""
    caller = sys._getframe(1).f_locals.get("self")
    trusted = trusts_checkpoints(getattr(caller, "config", None))
    return load_checkpoint(f, *args, trusted=trusted, **kwargs)


# --- datasets and dataloaders: built from the data, never unpickled ------------------------

def _warn_if_ignored(path, what):
    if path and os.path.exists(path):
        getLogger().warning(
            f"ignoring {path}: saved {what} are never loaded (unpickling could run code); "
            "building them from the data files"
        )


def recbole_dataset_class(config):
    """The dataset class RecBole's ``create_dataset`` picks for ``config['model']``
    (recbole/data/utils.py): ``{model}Dataset`` if RecBole has one, else by model type."""
    dataset_module = importlib.import_module("recbole.data.dataset")
    if hasattr(dataset_module, config["model"] + "Dataset"):
        return getattr(dataset_module, config["model"] + "Dataset")
    type2class = {
        ModelType.GENERAL: "Dataset",
        ModelType.SEQUENTIAL: "SequentialDataset",
        ModelType.CONTEXT: "Dataset",
        ModelType.KNOWLEDGE: "KnowledgeBasedDataset",
        ModelType.TRADITIONAL: "Dataset",
        ModelType.DECISIONTREE: "Dataset",
    }
    return getattr(dataset_module, type2class[config["MODEL_TYPE"]])


def create_dataset_without_pickles(config, dataset_class=None):
    """RecBole's ``create_dataset`` without loading a saved dataset: ``dataset_class`` (default:
    :func:`recbole_dataset_class`) built from the data files; ``save_dataset`` still saves."""
    dataset_class = dataset_class or recbole_dataset_class(config)
    default_file = os.path.join(config["checkpoint_dir"], f'{config["dataset"]}-{dataset_class.__name__}.pth')
    _warn_if_ignored(config["dataset_save_path"] or default_file, "datasets")
    dataset = dataset_class(config)
    if config["save_dataset"]:
        dataset.save()
    return dataset


def _function_seeing(function, **replaced):
    """A copy of ``function`` whose module globals are its module's, with ``replaced`` instead."""
    copy = types.FunctionType(
        function.__code__, {**function.__globals__, **replaced}, function.__name__, function.__defaults__,
        function.__closure__,
    )
    copy.__kwdefaults__ = function.__kwdefaults__
    return copy


_data_preparation_from_data = _function_seeing(
    _recbole_data_utils.data_preparation, load_split_dataloaders=lambda config: None,
)


def data_preparation_without_pickles(config, dataset):
    """RecBole's ``data_preparation`` without loading saved dataloaders: the split and the
    loaders are always built from ``dataset``; ``save_dataloaders`` still saves them."""
    default_file = os.path.join(config["checkpoint_dir"], f'{config["dataset"]}-for-{config["model"]}-dataloader.pth')
    _warn_if_ignored(config["dataloaders_save_path"] or default_file, "dataloaders")
    return _data_preparation_from_data(config, dataset)
