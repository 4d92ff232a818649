"""A training run's identity: its folder and its lock.

Each run lives in ``{checkpoint_dir}/{model}-{dataset}-seed{seed}-{hash}`` (or
``{checkpoint_dir}/{run_name}`` when ``run_name`` is set). The hash covers every setting that
changes what the run computes: the final RecBole config without paths, devices, verbosity, the
epoch budget (so ``--epochs`` can be raised on resume) and options at their neutral value
(:data:`NEUTRAL_SETTINGS`, so adding an option keeps existing runs). The same command therefore finds
its folder again, and two runs that differ in any setting never share checkpoints or results.

The folder holds ``best.pth`` (the best-validation model, RecBole's checkpoint), ``last.pth``
(:mod:`adrec_recbole.checkpoint`), ``run.log`` and ``result.json``; ``run.lock`` is held while
a process trains the run, so the same run cannot be started twice at once. The lock is an
``flock``: the system releases it when its process dies, even by SIGKILL.
"""
import fcntl
import hashlib
import json
import os

NOT_PART_OF_IDENTITY = {
    # where files go, how much is printed, which device, how long: not what is computed
    "checkpoint_dir", "result_file", "run_name", "resume", "dataloaders_save_path", "dataset_save_path",
    "save_dataloaders", "save_dataset", "plm_cache_dir", "download", "state", "show_progress", "log_wandb",
    "wandb_project", "device", "gpu_id", "use_gpu", "local_rank", "single_spec", "nproc", "world_size", "offset",
    "ip", "port", "worker", "epochs", "eval_batch_size", "trust_checkpoint", "group_offset",
}


#: Settings added after runs had been recorded, each with its NEUTRAL value: the value that computes
#: exactly what the code computed before the setting existed. At that value the key is left out of
#: a run's identity (:func:`settings_hash`, and the benchmark's fingerprints), so adding an option
#: to a model's yaml keeps every earlier run folder, checkpoint and benchmark record valid; any
#: other value is part of the identity. Register an option here in the commit that adds it, e.g.
#: ``"lr_decay": "none"`` (its default need not be the neutral value).
NEUTRAL_SETTINGS = {
    "lr_warmup_epochs": 0, "lr_decay_epochs": 0, "lr_min_ratio": 0.05,  # lr_schedule.py (2026-12-06)
    "adapter_experts": 1, "adapter_dropout": 0.0,  # ADRec's adapter.py (2026-12-06)
}


def is_neutral(key, value):
    """Whether ``key: value`` is a registered option at its neutral value (:data:`NEUTRAL_SETTINGS`)."""
    return key in NEUTRAL_SETTINGS and value == NEUTRAL_SETTINGS[key]


class RunLockedError(RuntimeError):
    """Another process is training this run."""


def settings_hash(config, length=8):
    """Hex digest of the settings that define what the run computes. The number of processes of a
    multi-process run is one of them (each rank draws its own batches and dropout), a single
    process adds nothing."""
    settings = {
        key: os.path.abspath(value) if key == "data_path" else value
        for key, value in config.final_config_dict.items()
        if key not in NOT_PART_OF_IDENTITY and not is_neutral(key, value)
    }
    if not config["single_spec"] and config["world_size"] > 1:
        settings["processes"] = config["world_size"]
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def run_folder(config):
    """The folder of this configuration's run (not created)."""
    name = str(config["run_name"] or "") or f"{config['model']}-{config['dataset']}-seed{config['seed']}-{settings_hash(config)}"
    if os.sep in name or name in ("", ".", ".."):
        raise ValueError(f"run_name={name!r}: give a plain folder name")
    return os.path.join(config["checkpoint_dir"], name)


class RunLock:
    """Exclusive lock on a run folder for the life of a ``with`` block (creates the folder)."""

    def __init__(self, folder):
        self.path = os.path.join(folder, "run.lock")
        self.handle = None

    def __enter__(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self.handle = open(self.path, "a+")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.seek(0)
            holder = self.handle.read().strip() or "another process"
            self.handle.close()
            raise RunLockedError(
                f"this run is being trained right now by {holder} (lock {self.path}); "
                "wait for it, or give this one another --run_name"
            ) from None
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(f"pid {os.getpid()}\n")
        self.handle.flush()
        return self

    def __exit__(self, *exc_info):
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()
