"""One run path for ADRec and for RecBole's own models, as RecBole's ``run_recbole``.

RecBole's ``quick_start.run_recbole`` looks models up by name in its own package only, so a
plugin writes its own (as UniSRec's ``finetune.py`` and RecBole-GNN's ``quick_start`` do):
Config -> seed and logger -> dataset -> data_preparation -> model -> Trainer fit/evaluate.
Any RecBole model runs through the same function by name, on the same data and protocol.
With ``nproc > 1`` (or ``world_size`` set, or under ``torchrun``) the same function runs in
every process of a multi-process run (:mod:`adrec_recbole.distributed`).
"""
import contextlib
import logging
import os
import pickle
import platform
import resource
import sys
import time
from logging import getLogger

import torch
import yaml
from recbole.utils import get_model, get_trainer, init_logger, init_seed, set_color

from adrec_recbole import distributed
from adrec_recbole.compat import Config  # RecBole's, fixed for multi-process runs (compat applies its fixes on import)
from adrec_recbole.atomic import write_json
from adrec_recbole.catalogue import with_item_catalogue
from adrec_recbole.checkpoint import (
    BEST_CHECKPOINT,
    LAST_CHECKPOINT,
    EpochClock,
    load_last,
    restore_rng_states,
    restore_trainer,
    resumable,
    rng_states_of_this_rank,
    save_last,
)
from adrec_recbole.cold_start import subset_results
from adrec_recbole.config_check import ConfigError, check_config, check_setting_names
from adrec_recbole.data import DataFormatError, DatasetNotFoundError, ensure_dataset, validate_dataset
from adrec_recbole.data.ensure import is_default_data_path
from adrec_recbole.dataset import ADRecDataset
from adrec_recbole.lr_schedule import LearningRateSchedule
from adrec_recbole.model import ADRec
from adrec_recbole.paths import PROPERTIES_DIR, not_found_message, resolve_user_file
from adrec_recbole.run_folder import RunLock, RunLockedError, run_folder, settings_hash
from adrec_recbole.safe_load import (
    UnsafeCheckpointError,
    create_dataset_without_pickles,
    data_preparation_without_pickles,
    recbole_dataset_class,
)

PLUGIN_MODELS = {"ADRec": ADRec}
RESULT_FILE = "result.json"


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
    """The project's yaml files for this model and dataset, then the user's (later wins); a
    user's file is found in the working directory, else among the package's properties."""
    candidates = [
        os.path.join(PROPERTIES_DIR, "overall.yaml"),
        os.path.join(PROPERTIES_DIR, "dataset", f"{dataset}.yaml"),
        os.path.join(PROPERTIES_DIR, "model", f"{model_name}.yaml"),
    ]
    files = [path for path in candidates if os.path.isfile(path)]
    for path in config_file_list or []:
        found = resolve_user_file(path)
        if found is None:
            raise RunError(not_found_message("config file", path))
        files.append(found)
    return files


def _check_yaml_syntax(path):
    try:
        with open(path, encoding="utf-8") as handle:
            yaml.safe_load(handle)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise RunError(f"{path}{where}: not valid yaml ({getattr(error, 'problem', None) or error})") from None
    except UnicodeDecodeError as error:
        raise RunError(f"{path}: not UTF-8 ({error.reason} at byte {error.start})") from None


@contextlib.contextmanager
def _command_line_hidden():
    """RecBole's ``Config`` also reads ``--key=value`` from ``sys.argv``: hidden while it is built,
    so that only the settings given here count, whatever program runs this (``run_recbole.py``
    parses its own flags, :mod:`adrec_recbole.command_line`; under pytest, Ray or a user's script
    the process's arguments are not RecBole settings)."""
    argv = sys.argv
    sys.argv = argv[:1]
    try:
        yield
    finally:
        sys.argv = argv


def build_config(model, dataset, config_file_list=None, config_dict=None, flag_names=()):
    """RecBole ``Config`` with the project's property files, then ``config_dict``, checked
    (:mod:`config_check`) before anything is loaded; ``model`` is a name. ``flag_names``: the keys of
    ``config_dict`` a user typed as flags, each of which must be a setting of this run."""
    model_class_or_name = resolve_model(model)
    config_files = config_files_for(model, dataset, config_file_list)
    for path in config_files:
        _check_yaml_syntax(path)
    with _command_line_hidden():
        config = Config(model=model_class_or_name, dataset=dataset, config_file_list=config_files,
                        config_dict=config_dict)
    try:
        check_setting_names(config, flag_names)
        check_config(config)
    except ConfigError as error:
        raise RunError(str(error)) from None
    if config["show_progress"] is None:
        config["show_progress"] = progress_bars_wanted()
    return config


def progress_bars_wanted():
    """``show_progress`` left unset: RecBole's progress bars on a terminal, none in CI or when the
    output goes to a file (a log would fill with bar updates)."""
    return sys.stderr.isatty() and not os.environ.get("CI")


def prepare_data(config):
    """Make sure the dataset's files exist (download/convert known ones, else one-line advice) and
    pass :func:`~adrec_recbole.data.validate.validate_dataset`, before anything is built or written.

    A missing Amazon 2018 category is downloaded into the default ``dataset/`` even if that folder
    does not exist yet, but never into a ``data_path`` that does not exist (a typo, most likely).
    """
    data_root = os.path.dirname(config["data_path"])  # RecBole has appended the dataset name
    try:
        folder = ensure_dataset(config["dataset"], data_root, download=config["download"] is not False,
                                create_root=is_default_data_path(data_root))
        validate_dataset(folder, config["dataset"])
    except (DatasetNotFoundError, DataFormatError) as error:
        raise RunError(str(error)) from None


def build_dataset(config):
    """The dataset object the model needs: ADRec reads item text, others RecBole's own; every model
    ranks the same catalogue (:mod:`adrec_recbole.catalogue`). Always built from the data files: a
    saved dataset is never unpickled (:mod:`adrec_recbole.safe_load`)."""
    dataset_class = ADRecDataset if config["model"] in PLUGIN_MODELS else recbole_dataset_class(config)
    return create_dataset_without_pickles(config, with_item_catalogue(dataset_class))


def _start_or_resume(config, folder):
    """The ``last`` checkpoint to resume from, or None to start afresh, as ``resume`` says:
    True continues, False starts over, unset refuses to guess when there is one."""
    last_file = os.path.join(folder, LAST_CHECKPOINT)
    if not os.path.exists(last_file):
        return None
    if config["resume"] is None:
        raise RunError(
            f"this run was started before and left a checkpoint in {folder}: add --resume to continue it, "
            "or --resume=False to start it over"
        )
    if not config["resume"]:
        for name in (LAST_CHECKPOINT, BEST_CHECKPOINT, RESULT_FILE):
            if os.path.exists(os.path.join(folder, name)):
                os.remove(os.path.join(folder, name))
        return None
    try:
        checkpoint = load_last(last_file)
    except Exception as error:  # unreadable, truncated or foreign: say so, never train on it
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        if isinstance(error, pickle.UnpicklingError):
            reason = "not a checkpoint of plain tensors (torch's weights_only loader refused it)"
        raise RunError(f"cannot resume from {last_file}: {reason}; use --resume=False to start over") from None
    if checkpoint["run_state"].get("settings_hash") != settings_hash(config):
        raise RunError(
            f"cannot resume from {last_file}: it was trained with other settings (a --run_name reused?); "
            "use the original settings, another --run_name, or --resume=False to start over"
        )
    return checkpoint


def _claim_run(config, cleanup):
    """The run's folder and the ``last`` checkpoint to resume from (or None).

    Rank 0 (or the only process) makes sure of the data, locks the folder and decides whether to
    resume (:func:`_start_or_resume`); the other ranks follow its decision and read the same
    checkpoint, so with several nodes the folder must be on a filesystem they share.
    """
    checkpoint = decision = None
    if distributed.is_main_process():
        prepare_data(config)
        folder = run_folder(config)
        try:
            cleanup.enter_context(RunLock(folder))
        except RunLockedError as error:
            raise RunError(str(error)) from None
        checkpoint = _start_or_resume(config, folder)
        decision = (folder, checkpoint is not None)
    folder, resuming = distributed.broadcast_from_main(decision)
    if resuming and checkpoint is None:
        checkpoint = load_last(os.path.join(folder, LAST_CHECKPOINT))
    return folder, checkpoint


@contextlib.contextmanager
def _log_into(folder):
    """Also write the root logger's records to ``folder/run.log`` (appending on resume)."""
    root = getLogger()
    handler = logging.FileHandler(os.path.join(folder, "run.log"), encoding="utf-8")
    recbole_file_handler = next((h for h in root.handlers if isinstance(h, logging.FileHandler)), None)
    if recbole_file_handler is not None:
        handler.setFormatter(recbole_file_handler.formatter)
        for log_filter in recbole_file_handler.filters:
            handler.addFilter(log_filter)
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        handler.close()


def run(model, dataset, config_file_list=None, config_dict=None, callback_fn=None, flag_names=()):
    """Train and test ``model`` on ``dataset``; return (and save as JSON) the results.

    The run lives in its own folder (:mod:`adrec_recbole.run_folder`); with ``resume: True``
    an interrupted run continues from its ``last`` checkpoint and ends with the metrics the
    uninterrupted run would have had. ``callback_fn(epoch_idx, valid_score)`` is called after
    each validation (used by tuning). ``flag_names``: see :func:`build_config`.

    With ``nproc: N > 1`` (or ``world_size`` set) this process starts N processes that each run
    this function (:func:`_run_process`) and returns rank 0's result; a process started by
    ``torchrun`` is one of them directly. Rank 0 alone writes the run's files.
    """
    launched_by_torchrun = distributed.torchrun_settings()
    if launched_by_torchrun:
        config_dict = {**(config_dict or {}), **launched_by_torchrun}
    config = build_config(model, dataset, config_file_list, config_dict, flag_names)
    if distributed.launch_requested(config):
        return _launch(model, dataset, config_file_list, config_dict, config, callback_fn)
    with contextlib.ExitStack() as cleanup:
        cleanup.push(distributed.close)
        try:
            folder, checkpoint = _claim_run(config, cleanup)
            init_seed(config["seed"], config["reproducibility"])
            if distributed.is_main_process():
                init_logger(config)
                cleanup.enter_context(_log_into(folder))
            else:
                getLogger().setLevel(logging.ERROR)
            return _train_and_test(config, folder, checkpoint, callback_fn)
        except UnsafeCheckpointError as error:
            raise RunError(str(error)) from None


def _launch(model, dataset, config_file_list, config_dict, config, callback_fn):
    """Start this node's processes of a multi-process run and wait for them; rank 0's result,
    or the one-line error a process stopped with."""
    if callback_fn is not None:
        raise RunError("a multi-process run calls no callback (the tuner runs one process per trial): leave nproc at 1")
    settings = distributed.worker_settings(config)
    nproc = settings["nproc"]
    on_cpu = config["device"].type == "cpu"
    if not on_cpu and nproc > torch.cuda.device_count():
        raise RunError(f"nproc={nproc} needs {nproc} GPUs, and gpu_id={config['gpu_id']!r} gives "
                       f"{torch.cuda.device_count()}: list them in --gpu_id (e.g. --gpu_id=0,1)")
    threads = max(1, (os.cpu_count() or 1) // nproc) if on_cpu else None  # the CPU's cores shared out
    worker_dict = {**(config_dict or {}), **settings}
    status, value = distributed.spawn(_run_process, nproc, (model, dataset, config_file_list, worker_dict),
                                      threads_per_process=threads)
    if status == "error":
        raise RunError(value)
    return value


def _run_process(local_rank, model, dataset, config_file_list, config_dict, outcome):
    """One process of a multi-process run started by :func:`_launch`: local rank 0 reports the
    result to the parent, a process stopped by bad input its one-line error (exit code 2)."""
    try:
        result = run(model, dataset, config_file_list, {**config_dict, "local_rank": local_rank})
    except RunError as error:
        outcome.put(("error", str(error)))
        sys.exit(2)
    if local_rank == 0:
        outcome.put(("ok", result))


def _train_and_test(config, folder, checkpoint, callback_fn):
    # the run's identity is taken before loading adds keys to the config (RecBole's BERT4Rec
    # transform adds MASK_ITEM_SEQ, POS_ITEMS, ...): the same hash as its folder's, so it resumes
    identity = settings_hash(config)
    logger = getLogger()
    logger.info(sys.argv)
    logger.info(config)
    dataset_obj = build_dataset(config)
    logger.info(dataset_obj)
    train_data, valid_data, test_data = data_preparation_without_pickles(config, dataset_obj)

    init_seed(config["seed"] + distributed.rank(), config["reproducibility"])
    model_class = PLUGIN_MODELS.get(config["model"]) or get_model(config["model"])
    with distributed.main_process_first():  # rank 0 fills the item-vector cache for the others
        model_obj = model_class(config, train_data.dataset).to(config["device"])
    logger.info(model_obj)
    trainer_class = resumable(get_trainer(config["MODEL_TYPE"], config["model"]))
    if distributed.is_distributed():
        trainer_class = distributed.exact_evaluation(trainer_class)
    trainer = trainer_class(config, model_obj)
    trainer.saved_model_file = os.path.join(folder, BEST_CHECKPOINT)
    trainer.last_checkpoint_file = os.path.join(folder, LAST_CHECKPOINT)
    clock = EpochClock(config["valid_metric_bigger"], checkpoint["run_state"]["clock"] if checkpoint else None)
    trainer.run_state = lambda: {"clock": clock.state(), "settings_hash": identity}
    trainer.lr_schedule = LearningRateSchedule.from_config(trainer.optimizer, config)
    stopped_early = False
    if checkpoint is not None:
        restore_trainer(trainer, checkpoint)
        trainer.epochs_done = checkpoint["next_epoch"]
        stopped_early = checkpoint["stopped_early"]
        logger.info(set_color("resuming", "yellow") + f" {folder} at epoch {checkpoint['next_epoch']}"
                    + (" (training had ended)" if stopped_early else ""))
        restore_rng_states(rng_states_of_this_rank(checkpoint), train_data)

    def on_epoch_end(epoch_idx, valid_score):
        clock(epoch_idx, valid_score)
        if callback_fn is not None:
            callback_fn(epoch_idx, valid_score)

    best_valid_score, best_valid_result = trainer.best_valid_score, trainer.best_valid_result
    if not stopped_early and trainer.start_epoch < trainer.epochs:
        best_valid_score, best_valid_result = trainer.fit(
            train_data, valid_data, saved=True, show_progress=config["show_progress"], callback_fn=on_epoch_end,
        )
        stopped_early = trainer.epochs_done < trainer.epochs
        save_last(trainer.last_checkpoint_file, trainer, train_data, trainer.epochs_done, stopped_early,
                  trainer.run_state())
    fit_seconds = clock.seconds
    distributed.barrier()  # rank 0 has written the best checkpoint the others load
    test_start = time.time()
    test_result = trainer.evaluate(test_data, load_best_model=True, show_progress=config["show_progress"])
    test_seconds = time.time() - test_start
    subsets = subset_results(trainer, train_data, test_data)  # cold-start (and zero-shot) test rows
    logger.info(set_color("best valid ", "yellow") + f": {best_valid_result}")
    logger.info(set_color("test result", "yellow") + f": {test_result}")
    for name, subset in subsets.items():
        logger.info(set_color(f"test {name}", "yellow") + f" ({subset['rows']} rows, {subset['items']} items): "
                    f"{subset['result']}")

    result = {
        "model": config["model"],
        "dataset": config["dataset"],
        "seed": config["seed"],
        "command": " ".join(sys.argv),
        "valid_metric": config["valid_metric"],
        "best_valid_score": best_valid_score,
        "best_valid_result": dict(best_valid_result or {}),
        "test_result": dict(test_result or {}),
        **subsets,
        "best_epoch": clock.best_epoch,
        "epochs_run": clock.epochs,
        "fit_seconds": round(fit_seconds, 1),
        "seconds_per_epoch": round(fit_seconds / max(clock.epochs, 1), 2),
        "test_eval_seconds": round(test_seconds, 2),
        "parameters": sum(p.numel() for p in model_obj.parameters() if p.requires_grad),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "device": str(config["device"]),
        "world_size": distributed.world_size(),
        "torch_threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "run_folder": folder,
        "resumed_at_epoch": checkpoint["next_epoch"] if checkpoint else None,
        "checkpoint": trainer.saved_model_file,
    }
    result_file = config["result_file"] or os.path.join(folder, RESULT_FILE)
    if distributed.is_main_process():
        write_json(result_file, result)
        logger.info(set_color("results saved", "yellow") + f": {result_file}")
    result["result_file"] = result_file
    return result
