"""One run path for ADRec and for RecBole's own models, as RecBole's ``run_recbole``.

RecBole's ``quick_start.run_recbole`` looks models up by name in its own package only, so a
plugin writes its own (as UniSRec's ``finetune.py`` and RecBole-GNN's ``quick_start`` do):
Config -> seed and logger -> dataset -> data_preparation -> model -> Trainer fit/evaluate.
Any RecBole model runs through the same function by name, on the same data and protocol.
"""
import json
import os
import platform
import resource
import sys
import time
from logging import getLogger

import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.utils import get_model, get_trainer, init_logger, init_seed, set_color

from adrec_recbole import compat  # noqa: F401  (RecBole fixes, applied on import)
from adrec_recbole.data import DatasetNotFoundError, ensure_dataset
from adrec_recbole.dataset import ADRecDataset
from adrec_recbole.model import ADRec

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROPERTIES_DIR = os.path.join(PROJECT_ROOT, "properties")
PLUGIN_MODELS = {"ADRec": ADRec}


class RunError(Exception):
    """A problem with the user's input, reported as one line instead of a stack trace."""


def resolve_model(name):
    """ADRec's class for ``ADRec``; RecBole's model name, checked, for anything else."""
    if name in PLUGIN_MODELS:
        return PLUGIN_MODELS[name]
    try:
        get_model(name)
    except (ValueError, ImportError):  # RecBole's lookup imports lightgbm/xgboost on a miss
        raise RunError(
            f"unknown model {name!r}: use ADRec or a RecBole model name "
            "(SASRec, BERT4Rec, GRU4Rec, FDSA, Pop, ...)"
        ) from None
    return name


def config_files_for(model_name, dataset, config_file_list=None):
    """The project's yaml files for this model and dataset, then the user's (later wins)."""
    candidates = [
        os.path.join(PROPERTIES_DIR, "overall.yaml"),
        os.path.join(PROPERTIES_DIR, "dataset", f"{dataset}.yaml"),
        os.path.join(PROPERTIES_DIR, "model", f"{model_name}.yaml"),
    ]
    files = [path for path in candidates if os.path.isfile(path)]
    for path in config_file_list or []:
        if not os.path.isfile(path):
            raise RunError(f"config file not found: {path}")
        files.append(path)
    return files


def build_config(model, dataset, config_file_list=None, config_dict=None):
    """RecBole ``Config`` with the project's property files; ``model`` is a name."""
    model_class_or_name = resolve_model(model)
    return Config(
        model=model_class_or_name,
        dataset=dataset,
        config_file_list=config_files_for(model, dataset, config_file_list),
        config_dict=config_dict,
    )


def prepare_data(config):
    """Make sure the dataset's files exist (download/convert known ones, else one-line advice)."""
    data_root = os.path.dirname(config["data_path"])  # RecBole has appended the dataset name
    try:
        ensure_dataset(config["dataset"], data_root, download=config["download"] is not False)
    except DatasetNotFoundError as error:
        raise RunError(str(error)) from None


def build_dataset(config):
    """The dataset object the model needs: ADRec reads item text, others RecBole's own."""
    if config["model"] in PLUGIN_MODELS:
        return ADRecDataset(config)
    return create_dataset(config)


class EpochClock:
    """Trainer callback that records when each validated epoch ended and the best one."""

    def __init__(self, bigger_is_better):
        self.bigger_is_better = bigger_is_better
        self.start = time.time()
        self.epochs = 0
        self.best_epoch = None
        self.best_score = None

    def __call__(self, epoch_idx, valid_score):
        self.epochs = epoch_idx + 1
        better = self.best_score is None or (
            valid_score > self.best_score if self.bigger_is_better else valid_score < self.best_score
        )
        if better:
            self.best_score, self.best_epoch = valid_score, epoch_idx


def run(model, dataset, config_file_list=None, config_dict=None, saved=True, callback_fn=None):
    """Train and test ``model`` on ``dataset``; return (and save as JSON) the results.

    ``callback_fn(epoch_idx, valid_score)`` is called after each validation (used by tuning).
    """
    config = build_config(model, dataset, config_file_list, config_dict)
    prepare_data(config)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logger = getLogger()
    logger.info(sys.argv)
    logger.info(config)

    dataset_obj = build_dataset(config)
    logger.info(dataset_obj)
    train_data, valid_data, test_data = data_preparation(config, dataset_obj)

    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model_class = PLUGIN_MODELS.get(config["model"]) or get_model(config["model"])
    model_obj = model_class(config, train_data.dataset).to(config["device"])
    logger.info(model_obj)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model_obj)

    clock = EpochClock(config["valid_metric_bigger"])

    def on_epoch_end(epoch_idx, valid_score):
        clock(epoch_idx, valid_score)
        if callback_fn is not None:
            callback_fn(epoch_idx, valid_score)

    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, saved=saved, show_progress=config["show_progress"],
        callback_fn=on_epoch_end,
    )
    fit_seconds = time.time() - clock.start
    test_start = time.time()
    test_result = trainer.evaluate(
        test_data, load_best_model=saved, show_progress=config["show_progress"]
    )
    test_seconds = time.time() - test_start
    logger.info(set_color("best valid ", "yellow") + f": {best_valid_result}")
    logger.info(set_color("test result", "yellow") + f": {test_result}")

    result = {
        "model": config["model"],
        "dataset": config["dataset"],
        "seed": config["seed"],
        "command": " ".join(sys.argv),
        "valid_metric": config["valid_metric"],
        "best_valid_score": best_valid_score,
        "best_valid_result": dict(best_valid_result or {}),
        "test_result": dict(test_result or {}),
        "best_epoch": clock.best_epoch,
        "epochs_run": clock.epochs,
        "fit_seconds": round(fit_seconds, 1),
        "seconds_per_epoch": round(fit_seconds / max(clock.epochs, 1), 2),
        "test_eval_seconds": round(test_seconds, 2),
        "parameters": sum(p.numel() for p in model_obj.parameters() if p.requires_grad),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "device": str(config["device"]),
        "torch_threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "checkpoint": trainer.saved_model_file if saved else None,
    }
    result_file = config["result_file"] or os.path.join(
        config["checkpoint_dir"], f"{config['model']}-{config['dataset']}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    )
    os.makedirs(os.path.dirname(os.path.abspath(result_file)), exist_ok=True)
    with open(result_file, "w") as handle:
        json.dump(result, handle, indent=2)
    logger.info(set_color("results saved", "yellow") + f": {result_file}")
    result["result_file"] = result_file
    return result
