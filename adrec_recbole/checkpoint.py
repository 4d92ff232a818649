"""The ``last`` checkpoint: everything the next epoch depends on, so a killed run resumes
exactly where it stopped.

RecBole's Trainer saves only the best model (and pickles its ``Config`` into it; the best
checkpoint written here holds the settings as a plain dict instead, so it too is read with
``weights_only=True``: :mod:`adrec_recbole.safe_load`). A resumable
run also needs the state at the start of the next epoch: model (ADRec's queues, pointers and
momentum copy are buffers of it), optimizer, the epoch, the best validation score, result and
epoch, the early-stopping counter, the RNG states of Python, NumPy and torch (CPU and CUDA),
and the train loader's own shuffling generator (RecBole seeds one per loader). Given these, a
resumed run draws the same batches and dropout masks as the uninterrupted one, so it ends with
the same metrics.

The file holds only plain types and tensors and is read with ``torch.load(weights_only=True)``:
loading it cannot execute code. Every write goes to a temporary file first and is renamed over
the old one, so a kill during the write leaves the previous checkpoint intact.
"""
import random
import time

import numpy as np
import torch
from recbole.utils import set_color

from adrec_recbole import distributed
from adrec_recbole.atomic import torch_save
from adrec_recbole.safe_load import plain_config, plain_other_parameter

LAST_CHECKPOINT = "last.pth"
BEST_CHECKPOINT = "best.pth"
FORMAT_VERSION = 1


def capture_rng_states(train_loader):
    """Every random-number state the training loop draws from, as plain types and tensors."""
    version, mt_state, gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_cached = np.random.get_state()
    return {
        "python": [version, list(mt_state), gauss],
        "numpy": [np_name, torch.from_numpy(np_keys.astype(np.int64)), int(np_pos), int(np_has_gauss),
                  float(np_cached)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "train_loader": train_loader.generator.get_state(),
    }


def restore_rng_states(states, train_loader):
    version, mt_state, gauss = states["python"]
    random.setstate((version, tuple(mt_state), gauss))
    np_name, np_keys, np_pos, np_has_gauss, np_cached = states["numpy"]
    np.random.set_state((np_name, np_keys.numpy().astype(np.uint32), np_pos, np_has_gauss, np_cached))
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    train_loader.generator.set_state(states["train_loader"])


def rng_states_of_this_rank(checkpoint):
    """The RNG states this process saved in ``checkpoint``: with several processes, each
    rank's are kept (``rng_by_rank``, in rank order), ``rng`` is rank 0's."""
    return checkpoint["rng_by_rank"][distributed.rank()] if distributed.is_distributed() else checkpoint["rng"]


def save_last(path, trainer, train_loader, next_epoch, stopped_early, run_state):
    """Write the ``last`` checkpoint: the state at the start of epoch ``next_epoch``.

    ``run_state``: the run path's own bookkeeping (plain types), e.g. its epoch clock. With
    several processes every rank calls this (its RNG states are gathered) and rank 0 writes.
    """
    rng = capture_rng_states(train_loader)
    rng_by_rank = distributed.all_gather_objects(rng) if distributed.is_distributed() else None
    if not distributed.is_main_process():
        return
    best_result = trainer.best_valid_result
    state = {
        "format": FORMAT_VERSION,
        "next_epoch": int(next_epoch),
        "stopped_early": bool(stopped_early),
        "state_dict": trainer.model.state_dict(),
        "other_parameter": plain_other_parameter(trainer.model.other_parameter()),
        "optimizer": trainer.optimizer.state_dict(),
        "cur_step": int(trainer.cur_step),
        "best_valid_score": float(trainer.best_valid_score),
        "best_valid_result": {key: float(value) for key, value in best_result.items()} if best_result else None,
        "rng": rng,
        "run_state": run_state,
    }
    if rng_by_rank is not None:
        state["rng_by_rank"] = rng_by_rank
    torch_save(state, path)


def best_checkpoint_state(trainer, epoch):
    """The best checkpoint with RecBole's keys, readable with ``weights_only=True``: ``config``
    is the plain dict of the final settings (enums and devices as strings), not the pickled
    ``Config``, so RecBole-style readers still find ``checkpoint["config"]["model"]``."""
    return {
        "config": plain_config(trainer.config),
        "epoch": int(epoch),
        "cur_step": int(trainer.cur_step),
        "best_valid_score": float(trainer.best_valid_score),
        "state_dict": trainer.model.state_dict(),
        "other_parameter": plain_other_parameter(trainer.model.other_parameter()),
        "optimizer": trainer.optimizer.state_dict(),
    }


def load_last(path):
    """The ``last`` checkpoint at ``path``, read safely (``weights_only=True``) onto the CPU.
    :func:`restore_trainer` copies the model and optimizer state onto the model's device, and the
    RNG setters (torch's, NumPy's, the loader's) take CPU tensors only: read onto the run's device,
    a run trained on a GPU could not resume there."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if checkpoint.get("format") != FORMAT_VERSION:
        raise ValueError(f"{path}: not a last checkpoint of this version (format {checkpoint.get('format')!r})")
    return checkpoint


def restore_trainer(trainer, checkpoint):
    """Put model, optimizer and early-stopping state back; the RNGs are restored separately,
    right before training continues (:func:`restore_rng_states`)."""
    trainer.model.load_state_dict(checkpoint["state_dict"])
    trainer.model.load_other_parameter(checkpoint["other_parameter"] or None)
    trainer.optimizer.load_state_dict(checkpoint["optimizer"])
    trainer.start_epoch = checkpoint["next_epoch"]
    trainer.cur_step = checkpoint["cur_step"]
    trainer.best_valid_score = checkpoint["best_valid_score"]
    trainer.best_valid_result = checkpoint["best_valid_result"]


class ResumableTrainerMixin:
    """Put in front of a RecBole trainer class: writes ``last`` at the start of every epoch
    after the first one of this process (the state then is final: the previous epoch, its
    validation and early-stopping update are done) and writes the best checkpoint atomically.

    The run path sets ``last_checkpoint_file``, ``run_state`` (a callable returning its own
    bookkeeping, plain types) and ``lr_schedule`` (a :class:`~adrec_recbole.lr_schedule.LearningRateSchedule`
    or ``None``) before ``fit``; ``epochs_done`` counts the epochs finished.
    """

    last_checkpoint_file = None
    run_state = None
    lr_schedule = None
    epochs_done = 0

    def _train_epoch(self, train_data, epoch_idx, *args, **kwargs):
        if epoch_idx > self.start_epoch and self.last_checkpoint_file:
            run_state = self.run_state() if self.run_state else {}
            save_last(self.last_checkpoint_file, self, train_data, epoch_idx, False, run_state)
        if self.lr_schedule is not None:
            rate = self.lr_schedule.begin_epoch(epoch_idx, len(train_data))
            self.logger.info(f"epoch {epoch_idx} learning rate: {rate:.3g} at its first step")
        result = super()._train_epoch(train_data, epoch_idx, *args, **kwargs)
        self.epochs_done = epoch_idx + 1
        return result

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        """RecBole's best checkpoint (same keys), but of tensors and plain types only:
        :func:`best_checkpoint_state`, written atomically, by global rank 0 only."""
        if not distributed.is_main_process():
            return
        saved_model_file = kwargs.pop("saved_model_file", self.saved_model_file)
        torch_save(best_checkpoint_state(self, epoch), saved_model_file)
        if verbose:
            self.logger.info(set_color("Saving current best", "blue") + f": {saved_model_file}")


def resumable(trainer_class):
    """``trainer_class`` with :class:`ResumableTrainerMixin` in front of it."""
    return type(f"Resumable{trainer_class.__name__}", (ResumableTrainerMixin, trainer_class), {})


class EpochClock:
    """Records the epochs validated, the best one, and the training seconds spent, across
    resumes (its state travels in the ``last`` checkpoint)."""

    def __init__(self, bigger_is_better, state=None):
        self.bigger_is_better = bigger_is_better
        state = state or {}
        self.epochs = state.get("epochs", 0)
        self.best_epoch = state.get("best_epoch")
        self.best_score = state.get("best_score")
        self.seconds_before = state.get("seconds", 0.0)
        self.start = time.time()

    def __call__(self, epoch_idx, valid_score):
        """A tie counts as better, as in RecBole's ``early_stopping``, which then saves the best
        checkpoint again: the best epoch named is the one whose weights are tested."""
        self.epochs = epoch_idx + 1
        better = self.best_score is None or (
            valid_score >= self.best_score if self.bigger_is_better else valid_score <= self.best_score
        )
        if better:
            self.best_score, self.best_epoch = float(valid_score), epoch_idx

    @property
    def seconds(self):
        return self.seconds_before + time.time() - self.start

    def state(self):
        return {"epochs": self.epochs, "best_epoch": self.best_epoch, "best_score": self.best_score,
                "seconds": self.seconds}
