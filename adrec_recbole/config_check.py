"""Configuration checks, run before any data is loaded: every ADRec key's type and range, the
training keys every model shares, and the PLM (it must load, and ``plm_layer`` must exist in it).

Each problem is one line, ``key=value: what is wrong``, raised as :class:`ConfigError`; the run
path turns it into ``error: ...`` and exit code 2. ADRec checks its configuration with the same
function when it is built outside the run path (by RecBole's own tools).
"""
import difflib
import math
import numbers
import os

TRAIN_MODES = ("frozen", "finetune")
ITEM_POOLINGS = ("mean", "attention")
NEGATIVE_SOURCES = ("queue", "catalogue", "batch")
ENQUEUE_POINTS = ("between", "after")
ACTIVATIONS = ("relu", "gelu")


class ConfigError(ValueError):
    """A setting has the wrong type or range."""


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _integer(low, high=None):
    def check(value):
        return _is_int(value) and value >= low and (high is None or value <= high)
    bound = f"an integer >= {low}" if high is None else f"an integer in {low}..{high}"
    return check, bound


def _number(low, high=None, low_open=False, high_open=False):
    def check(value):
        return (_is_number(value) and (value > low if low_open else value >= low)
                and (high is None or (value < high if high_open else value <= high)))
    left = "(" if low_open else "["
    right = "inf)" if high is None else (f"{high})" if high_open else f"{high}]")
    return check, f"a number in {left}{low}, {right}"


def _one_of(choices):
    return (lambda value: value in choices), f"one of {', '.join(choices)}"


def _boolean():
    return (lambda value: isinstance(value, bool)), "True or False"


def _string():
    return (lambda value: isinstance(value, str)), "a string"


def _strings():
    return (lambda value: isinstance(value, list) and all(isinstance(v, str) for v in value)), "a list of strings"


def _loss_weights():
    def check(value):
        return (isinstance(value, list) and len(value) == 4 and all(_is_number(w) and w >= 0 for w in value)
                and any(value))
    return check, "four weights >= 0 (seq->item, item->seq, seq->own copy, item->own copy), at least one > 0"


TRAINING_KEYS = {
    "learning_rate": _number(0, low_open=True),
    "weight_decay": _number(0),
    "train_batch_size": _integer(1),
    "eval_batch_size": _integer(1),
    "epochs": _integer(0),
    "stopping_step": _integer(1),
    "eval_step": _integer(1),
    "seed": _integer(0),
    "MAX_ITEM_LIST_LENGTH": _integer(1),
}

#: the item catalogue and the zero-shot setting, for every model (:mod:`adrec_recbole.catalogue`)
CATALOGUE_KEYS = {
    "item_catalogue": _one_of(("text", "interactions")),
    "zero_shot_items": _number(0, 1, high_open=True),
}

DISTRIBUTED_KEYS = {  # RecBole's flags of a multi-process run (README "Multi-GPU and multi-node")
    "nproc": _integer(1),
    "world_size": ((lambda value: value == -1 or (_is_int(value) and value >= 1)), "-1 (nproc) or an integer >= 1"),
    "group_offset": _integer(0),
    "offset": _integer(0),
    "ip": _string(),
    "port": _integer(1, 65535),
}

ADREC_KEYS = {
    # 1. item text
    "train_mode": _one_of(TRAIN_MODES),
    "plm_path": _string(),
    "plm_layer": (_is_int, "an integer (hidden_states index)"),
    "text_fields": _strings(),
    "text_prompt": _string(),
    "text_separator": _string(),
    "text_length": _integer(1),
    "missing_text_placeholder": _string(),
    "plm_batch_size": _integer(1),
    "item_pooling": _one_of(ITEM_POOLINGS),
    "pooling_heads": _integer(1),
    "item_whitening": _boolean(),
    "whitening_shrinkage": _number(0, low_open=True),
    "adapter": _boolean(),
    "hidden_size": _integer(1),
    # 2. sequence encoder
    "n_layers": _integer(1),
    "n_heads": _integer(1),
    "inner_size": _integer(1),
    "hidden_dropout_prob": _number(0, 1, high_open=True),
    "hidden_act": _one_of(ACTIVATIONS),
    "layer_norm_eps": _number(0, low_open=True),
    "position_embedding": _boolean(),
    # 3. losses
    "arc_scale": _number(0, low_open=True),
    "arc_margin": _number(0, math.pi / 2, high_open=True),
    "loss_weights": _loss_weights(),
    "seq_item_negatives": _one_of(NEGATIVE_SOURCES),
    # 4. dual momentum queue
    "queue_size": _integer(1),
    "momentum": _number(0, 1),
    "enqueue": _one_of(ENQUEUE_POINTS),
    "key_dropout": _boolean(),
}


def _check_keys(config, keys):
    for key, (check, expected) in keys.items():
        value = config[key]
        if not check(value):
            raise ConfigError(f"{key}={value!r}: expected {expected}")


def check_adrec_config(config):
    """ADRec's keys, their combinations and the PLM; raises :class:`ConfigError`."""
    _check_keys(config, ADREC_KEYS)
    if config["train_mode"] == "finetune" and config["seq_item_negatives"] == "catalogue":
        raise ConfigError(
            "seq_item_negatives='catalogue' re-encodes every item's text each step in finetune mode: "
            "use 'batch' or 'queue' there"
        )
    if config["item_whitening"] and (config["train_mode"] != "frozen" or config["item_pooling"] != "mean"):
        raise ConfigError("item_whitening needs train_mode='frozen' and item_pooling='mean' "
                          "(it is fitted once on fixed item vectors)")
    plm_path = config["plm_path"]
    if plm_path.startswith(("/", "./", "../", "~")) and not os.path.isdir(os.path.expanduser(plm_path)):
        raise ConfigError(f"plm_path={plm_path!r}: no such folder (give a folder holding a transformers model, "
                          "a hub name such as bert-base-uncased, or bundled-minilm)")
    from adrec_recbole.text_encoder import load_tokenizer_and_layer  # transformers: imported only here

    try:
        _, plm_config, _ = load_tokenizer_and_layer(config["plm_path"], config["plm_layer"])
    except (OSError, ValueError) as error:
        raise ConfigError(str(error).splitlines()[0]) from None
    width = config["hidden_size"] if config["adapter"] else plm_config.hidden_size
    if width % config["n_heads"]:
        origin = "hidden_size" if config["adapter"] else "the PLM's hidden size (adapter off)"
        raise ConfigError(f"{origin} {width} is not divisible by n_heads={config['n_heads']}")


def check_distributed_config(config):
    """``nproc``, ``world_size``, ``group_offset``, ``ip``, ``port``: types and how they fit."""
    _check_keys(config, {key: spec for key, spec in DISTRIBUTED_KEYS.items() if config[key] is not None})
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
    known = (set(config.internal_config_dict) | set(config.file_config_dict) | set(ADREC_KEYS)
             | set(CATALOGUE_KEYS) | set(DISTRIBUTED_KEYS) | {"plm_cache_dir"} | set(RUN_SETTINGS))
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f" (did you mean --{close[0]}?)" if close else ""
            raise ConfigError(f"unknown setting --{name}{hint}: not a setting of RecBole, of {config['model']} "
                              "or of this project's yaml files")


def check_config(config):
    """The keys every model's training reads, then the model's own (ADRec's here)."""
    _check_keys(config, {key: spec for key, spec in TRAINING_KEYS.items() if config[key] is not None})
    _check_keys(config, {key: spec for key, spec in CATALOGUE_KEYS.items() if config[key] is not None})
    for key in ("resume", "trust_checkpoint"):
        if config[key] not in (None, True, False):
            raise ConfigError(f"{key}={config[key]!r}: expected True or False")
    check_distributed_config(config)
    if config["model"] == "ADRec":
        check_adrec_config(config)
