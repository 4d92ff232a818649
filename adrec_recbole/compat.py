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
* pandas 2.2 warns (FutureWarning) on every dataset load about idioms inside RecBole's
  ``dataset.py`` that pandas 3 will change; pandas is pinned below 2.3 (see README), so the
  warnings from RecBole's modules are silenced instead of repeated in every log.
"""
import types
import warnings

import torch
import recbole.trainer.trainer as _recbole_trainer


class _TorchLoadingOwnCheckpoints(types.ModuleType):
    """``torch`` as seen by RecBole's trainer: everything delegated, ``load`` trusting."""

    def __getattr__(self, name):
        return getattr(torch, name)

    @staticmethod
    def load(f, *args, **kwargs):
        kwargs.setdefault("weights_only", False)
        return torch.load(f, *args, **kwargs)


warnings.filterwarnings("ignore", category=FutureWarning, module=r"recbole\.")

if not isinstance(_recbole_trainer.torch, _TorchLoadingOwnCheckpoints):
    _recbole_trainer.torch = _TorchLoadingOwnCheckpoints("torch")
