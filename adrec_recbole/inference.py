"""After training: a saved model back in memory, its metrics, its recommendations, its vectors.

Everything after training starts from a checkpoint through :func:`load_checkpoint`, for ADRec
and for RecBole's models trained through the run path (``saved/<run folder>/best.pth``):

* the checkpoint is read with torch's weights-only loader (:mod:`adrec_recbole.safe_load`; a
  file that needs arbitrary unpickling, e.g. one written by RecBole alone or by an earlier
  version of this project, loads only with ``trust_checkpoint=True``);
* its ``config`` (the plain dict of the final settings) is turned back into a RecBole
  ``Config`` through the run path's own :func:`~adrec_recbole.quick_start.build_config`, every
  stored setting taking precedence over today's yaml files; a setting that would come out
  different from the stored one is refused, settings the checkpoint lacks (added to the project
  since) are named in a warning;
* dataset and loaders are rebuilt from the data files, never unpickled, exactly as the training
  run built them (same split, same catalogue, :mod:`adrec_recbole.catalogue`); the model is
  built on them and given the checkpoint's weights, on ``config['device']``.

Then :func:`evaluate` (RecBole's own ``Trainer.evaluate``: the numbers the run reported, plus
the cold-start rows, :mod:`adrec_recbole.cold_start`), :class:`~adrec_recbole.recommendation.Recommender`
(top-k for users or ad-hoc histories, in external ids with titles, new items scored from their
text) and :func:`~adrec_recbole.vectors.export_vectors` (item and sequence vectors, a FAISS
index). The command-line faces are ``python -m adrec_recbole.evaluate``, ``.recommend`` and
``.export``.
"""
import contextlib
import dataclasses
import json
import os
from logging import getLogger

import torch
from recbole.utils import get_model, get_trainer, init_seed

from adrec_recbole import safe_load
from adrec_recbole.cold_start import subset_results
from adrec_recbole.data.layout import read_index
from adrec_recbole.quick_start import PLUGIN_MODELS, RunError, build_config, build_dataset, prepare_data
from adrec_recbole.run_folder import NOT_PART_OF_IDENTITY, is_neutral
from adrec_recbole.text import read_item_text_table

#: settings RecBole derives while building a Config (from the model class, the data path, the
#: machine): never passed back in, always derived again
DERIVED_KEYS = {
    "dataset", "model", "MODEL_TYPE", "MODEL_INPUT_TYPE", "eval_type", "device", "single_spec", "local_rank",
    "valid_metric_bigger", "valid_neg_sample_args", "test_neg_sample_args", "data_path",
}
#: the file is read into host memory first; the model then lives on ``config['device']``
HOST = torch.device("cpu")


@dataclasses.dataclass
class LoadedCheckpoint:
    """A trained model with everything it was trained and evaluated with. Unpacks like RecBole's
    ``load_data_and_model``: ``config, model, dataset, train_data, valid_data, test_data``."""

    config: object
    model: torch.nn.Module
    dataset: object
    train_data: object
    valid_data: object
    test_data: object
    checkpoint_file: str

    def __iter__(self):
        return iter((self.config, self.model, self.dataset, self.train_data, self.valid_data, self.test_data))


def _one_line(error):
    return " ".join(str(error).split()) or type(error).__name__


def read_checkpoint(path, trust_checkpoint=False):
    """The checkpoint dict at ``path`` (weights-only unless trusted); :class:`RunError` naming the
    problem for a missing, unreadable, unsafe or foreign file."""
    if not os.path.isfile(path):
        raise RunError(f"{path}: no such checkpoint file")
    try:
        checkpoint = safe_load.load_checkpoint(path, map_location=HOST, trusted=trust_checkpoint)
    except safe_load.UnsafeCheckpointError as error:
        raise RunError(str(error)) from None
    except Exception as error:  # torch's reader: truncated zip, bad magic number, EOF, ...
        raise RunError(f"{path}: not a readable checkpoint, truncated or damaged ({_one_line(error)[:200]})") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise RunError(f"{path}: not a model checkpoint (no state_dict)")
    if "config" not in checkpoint:
        if "next_epoch" in checkpoint:
            raise RunError(f"{path} is a 'last' checkpoint (the state to resume training from): "
                           "give the best.pth of the same run folder")
        raise RunError(f"{path}: not a model checkpoint (no config)")
    return checkpoint


def _comparable(value):
    return json.dumps(value, sort_keys=True, default=str)


def checkpoint_config(stored, checkpoint_file, data_path=None, config_dict=None):
    """RecBole ``Config`` of a checkpoint's stored settings (a plain dict); ``data_path`` (the data
    root) and ``config_dict`` (e.g. ``gpu_id``, ``eval_batch_size``) override them."""
    overrides = dict(config_dict or {})
    settings = {key: value for key, value in stored.items() if key not in DERIVED_KEYS}
    negatives = settings.get("train_neg_sample_args")
    if isinstance(negatives, dict) and negatives.get("distribution") == "none":
        settings["train_neg_sample_args"] = None  # RecBole's expanded form of "no sampling" is not an input
    settings["data_path"] = data_path or os.path.dirname(os.path.normpath(stored["data_path"]))
    settings["checkpoint_dir"] = os.path.dirname(os.path.abspath(checkpoint_file))  # RecBole's Trainer makes it
    settings["download"] = False
    settings.update(overrides)
    # RecBole eval()s string values of a config dict; repr() makes each string come back as itself
    quoted = {key: repr(value) if isinstance(value, str) else value for key, value in settings.items()}
    config = build_config(stored["model"], stored["dataset"], config_dict=quoted)  # sys.argv is not read
    rebuilt = safe_load.plain_config(config)
    ignored = NOT_PART_OF_IDENTITY | {"data_path", "download"} | set(overrides)
    changed = [key for key in stored if key not in ignored and key in rebuilt
               and _comparable(stored[key]) != _comparable(rebuilt[key])]
    if changed:
        raise RunError(f"{checkpoint_file}: these settings cannot be restored as stored: "
                       + ", ".join(f"{key}={stored[key]!r} (now {rebuilt[key]!r})" for key in changed))
    added = sorted(key for key in rebuilt if key not in stored and key not in ignored
                   and not is_neutral(key, rebuilt[key]))  # at its neutral value: what the run computed
    if added:
        getLogger().warning(f"{checkpoint_file} predates settings {added}: today's defaults are used for them")
    return config


def load_checkpoint(checkpoint_file, data_path=None, trust_checkpoint=False, config_dict=None, model=None,
                    dataset=None):
    """The model of ``checkpoint_file`` with its config, dataset and loaders (:class:`LoadedCheckpoint`).

    ``data_path``: the data root if the data moved since training (default: the stored one);
    ``trust_checkpoint``: load a file that needs arbitrary unpickling (runs its code: only for files
    whose author you trust); ``config_dict``: settings that do not change what the model computes
    (``gpu_id``, ``eval_batch_size``, ``plm_cache_dir``, ...); ``model``/``dataset``: refuse a
    checkpoint of another model or dataset. Problems raise :class:`~adrec_recbole.quick_start.RunError`.
    """
    checkpoint = read_checkpoint(checkpoint_file, trust_checkpoint)
    stored = safe_load.plain_config(checkpoint["config"])
    for key, expected in (("model", model), ("dataset", dataset)):
        if expected and stored.get(key) != expected:
            raise RunError(f"{checkpoint_file}: a checkpoint of {stored.get('model')} on {stored.get('dataset')}, "
                           f"not of {key} {expected}")
    config = checkpoint_config(stored, checkpoint_file, data_path, config_dict)
    prepare_data(config)
    init_seed(config["seed"], config["reproducibility"])
    dataset_obj = build_dataset(config)
    train_data, valid_data, test_data = safe_load.data_preparation_without_pickles(config, dataset_obj)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model_class = PLUGIN_MODELS.get(config["model"]) or get_model(config["model"])
    model_obj = model_class(config, train_data.dataset).to(config["device"])
    try:
        model_obj.load_state_dict(checkpoint["state_dict"])
        model_obj.load_other_parameter(checkpoint.get("other_parameter"))
    except (RuntimeError, KeyError, ValueError) as error:
        raise RunError(f"{checkpoint_file} does not fit {config['model']} on the data in {config['data_path']} "
                       f"(another dataset, or changed files?): {_one_line(error)[:300]}") from None
    model_obj.eval()
    return LoadedCheckpoint(config, model_obj, dataset_obj, train_data, valid_data, test_data, checkpoint_file)


@contextlib.contextmanager
def _without_tensorboard():
    """RecBole's Trainer opens a TensorBoard writer (a folder and an event file under
    ``log_tensorboard/``) when it is built; evaluating a saved model writes nothing."""
    import recbole.trainer.trainer as trainer_module

    original = trainer_module.get_tensorboard
    trainer_module.get_tensorboard = lambda logger: None
    try:
        yield
    finally:
        trainer_module.get_tensorboard = original


def evaluation_trainer(loaded):
    """RecBole's trainer for the loaded model, as the run path picks it, for evaluation only."""
    with _without_tensorboard():
        return get_trainer(loaded.config["MODEL_TYPE"], loaded.config["model"])(loaded.config, loaded.model)


def evaluate(loaded, show_progress=False):
    """Valid and test metrics of a loaded model (RecBole's ``Trainer.evaluate``, the numbers the
    training run reported), and the test metrics of its cold-start (and zero-shot) rows."""
    trainer = evaluation_trainer(loaded)
    valid = trainer.evaluate(loaded.valid_data, load_best_model=False, show_progress=show_progress)
    test = trainer.evaluate(loaded.test_data, load_best_model=False, show_progress=show_progress)
    return {
        "model": loaded.config["model"], "dataset": loaded.config["dataset"], "checkpoint": loaded.checkpoint_file,
        "valid_rows": len(loaded.valid_data._dataset), "test_rows": len(loaded.test_data._dataset),
        "valid_result": {key: float(value) for key, value in valid.items()},
        "test_result": {key: float(value) for key, value in test.items()},
        **subset_results(trainer, loaded.train_data, loaded.test_data, show_progress),
    }


def _title(fields):
    return fields.get("title") or fields.get("text") or next((value for value in fields.values() if value), "")


class Catalogue:
    """The dataset's external ids (ASINs, reviewer ids: through ``{name}.item2index`` and
    ``{name}.user2index`` where they exist, else the tokens of the files) and item titles (the
    ``title`` field, or UniSRec's ``text``), by internal id; index 0 is RecBole's padding."""

    def __init__(self, loaded):
        dataset, folder, name = loaded.dataset, loaded.config["data_path"], loaded.config["dataset"]
        self.name = name
        self.item_ids = self._external(dataset.field2id_token[dataset.iid_field],
                                       os.path.join(folder, f"{name}.item2index"))
        self.user_ids = self._external(dataset.field2id_token[dataset.uid_field],
                                       os.path.join(folder, f"{name}.user2index"))
        table = read_item_text_table(folder, name)
        self.titles = [""] + [_title(table.get(token, {})) for token in dataset.field2id_token[dataset.iid_field][1:]]
        self._items = {external: internal for internal, external in enumerate(self.item_ids) if internal}
        self._users = {external: internal for internal, external in enumerate(self.user_ids) if internal}

    @staticmethod
    def _external(tokens, index_file):
        raw_of = {token: raw for raw, token in read_index(index_file).items()} if os.path.isfile(index_file) else {}
        return [str(token) if position == 0 else raw_of.get(str(token), str(token))
                for position, token in enumerate(tokens)]

    def __contains__(self, external_item_id):
        return external_item_id in self._items

    def items(self, external_ids):
        """Internal ids of external item ids; :class:`RunError` naming the unknown ones."""
        unknown = [item for item in external_ids if item not in self._items]
        if unknown:
            raise RunError(f"unknown item id(s) {', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}: "
                           f"not in the catalogue of {self.name}")
        return [self._items[item] for item in external_ids]

    def user(self, external_id):
        """Internal id of an external user id; :class:`RunError` if the dataset has no such user."""
        if external_id not in self._users:
            raise RunError(f"unknown user id {external_id}: not a user of {self.name}")
        return self._users[external_id]
