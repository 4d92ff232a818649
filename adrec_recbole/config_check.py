"""Configuration checks, run before any data is loaded: the training keys every model shares,
the catalogue and multi-process keys, the names of the flags given, then the model's own keys
(ADRec's are in :mod:`adrec_recbole.adrec_config`, which uses the checks defined here).

Each problem is one line, ``key=value: what is wrong``, raised as :class:`ConfigError`; the run
path turns it into ``error: ...`` and exit code 2. ADRec checks its configuration with the same
function when it is built outside the run path (by RecBole's own tools).
"""
import difflib
import math
import numbers



class ConfigError(ValueError):
    """A setting has the wrong type or range."""


def is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def integer(low, high=None):
    def check(value):
        return is_int(value) and value >= low and (high is None or value <= high)
    bound = f"an integer >= {low}" if high is None else f"an integer in {low}..{high}"
    return check, bound


def number(low, high=None, low_open=False, high_open=False):
    def check(value):
        return (is_number(value) and (value > low if low_open else value >= low)
                and (high is None or (value < high if high_open else value <= high)))
    left = "(" if low_open else "["
    right = "inf)" if high is None else (f"{high})" if high_open else f"{high}]")
    return check, f"a number in {left}{low}, {right}"


def one_of(choices):
    return (lambda value: value in choices), f"one of {', '.join(choices)}"


def boolean():
    return (lambda value: isinstance(value, bool)), "True or False"


def string():
    return (lambda value: isinstance(value, str)), "a string"


def strings():
    return (lambda value: isinstance(value, list) and all(isinstance(v, str) for v in value)), "a list of strings"


TRAINING_KEYS = {
    "learning_rate": number(0, low_open=True),
    "lr_warmup_epochs": number(0),
    "lr_decay_epochs": number(0),
    "lr_min_ratio": number(0, 1, low_open=True),
    "weight_decay": number(0),
    "train_batch_size": integer(1),
    "eval_batch_size": integer(1),
    "epochs": integer(0),
    "stopping_step": integer(1),
    "eval_step": integer(1),
    "seed": integer(0),
    "MAX_ITEM_LIST_LENGTH": integer(1),
}

#: the item catalogue and the zero-shot setting, for every model (:mod:`adrec_recbole.catalogue`)
CATALOGUE_KEYS = {
    "item_catalogue": one_of(("text", "interactions")),
    "zero_shot_items": number(0, 1, high_open=True),
}

DISTRIBUTED_KEYS = {  # RecBole's flags of a multi-process run (README "Multi-GPU and multi-node")
    "nproc": integer(1),
    "world_size": ((lambda value: value == -1 or (is_int(value) and value >= 1)), "-1 (nproc) or an integer >= 1"),
    "group_offset": integer(0),
    "offset": integer(0),
    "ip": string(),
    "port": integer(1, 65535),
}



def check_keys(config, keys):
    for key, (check, expected) in keys.items():
        value = config[key]
        if not check(value):
            raise ConfigError(f"{key}={value!r}: expected {expected}")


def check_distributed_config(config):
    """``nproc``, ``world_size``, ``group_offset``, ``ip``, ``port``: types and how they fit."""
    check_keys(config, {key: spec for key, spec in DISTRIBUTED_KEYS.items() if config[key] is not None})
    nproc, world_size = config["nproc"] or 1, config["world_size"] or -1
    offset = config["group_offset"] or config["offset"] or 0
    if world_size > 0 and nproc + offset > world_size:
        raise ConfigError(f"nproc={nproc} processes from group_offset={offset} exceed world_size={world_size}")
    if (nproc > 1 or world_size > 1) and config["model"] == "Pop":
        raise ConfigError("Pop counts the items of each process's share separately and keeps rank 0's counts "
                          "(RecBole's Pop under DDP): train it in one process, which takes seconds")
    if world_size > nproc and config["ip"] is None:
        raise ConfigError(f"world_size={world_size} spans several nodes: give --ip (the address of the node "
                          "running rank 0) and the same --port on every node")


#: settings the run path reads although no yaml file sets them (:mod:`adrec_recbole.quick_start`)
RUN_SETTINGS = ("resume", "run_name", "result_file", "trust_checkpoint")


def check_setting_names(config, names):
    """Each of ``names`` (the settings a user typed as flags) must be a setting of this run: one of
    RecBole's (its defaults for this model and dataset), one of the yaml files read, one of ADRec's
    (also accepted for other models, so that one command line serves several), or one the run path
    reads. RecBole itself keeps any name silently, so a typo such as ``--epoch=5`` would train 300
    epochs; here it is one line."""
    from adrec_recbole.adrec_config import ADREC_KEYS

    known = (set(config.internal_config_dict) | set(config.file_config_dict) | set(ADREC_KEYS)
             | set(CATALOGUE_KEYS) | set(DISTRIBUTED_KEYS) | {"plm_cache_dir"} | set(RUN_SETTINGS))
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f" (did you mean --{close[0]}?)" if close else ""
            raise ConfigError(f"unknown setting --{name}{hint}: not a setting of RecBole, of {config['model']} "
                              "or of this project's yaml files")


def check_config(config):
    """The keys every model's training reads, then the model's own (ADRec's: :mod:`adrec_recbole.adrec_config`)."""
    check_keys(config, {key: spec for key, spec in TRAINING_KEYS.items() if config[key] is not None})
    check_keys(config, {key: spec for key, spec in CATALOGUE_KEYS.items() if config[key] is not None})
    for key in ("resume", "trust_checkpoint"):
        if config[key] not in (None, True, False):
            raise ConfigError(f"{key}={config[key]!r}: expected True or False")
    check_distributed_config(config)
    if config["model"] == "ADRec":
        from adrec_recbole.adrec_config import check_adrec_config

        check_adrec_config(config)
