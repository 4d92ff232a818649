"""ADRec's settings: every key's type and range, how they combine, and the PLM (it must load,
and ``plm_layer`` must exist in it), checked before any data is loaded.

Kept apart from :mod:`adrec_recbole.config_check` (the checks every model's run goes through) so
that a new ADRec setting changes ADRec's code version only: the benchmark's other models read
nothing here but the key names (a flag naming one is accepted), which change no number of theirs.
"""
import math
import os

from adrec_recbole.config_check import (
    ConfigError, boolean, check_keys, integer, is_int, is_number, number, one_of, string, strings,
)

TRAIN_MODES = ("frozen", "finetune")
ITEM_POOLINGS = ("mean", "attention")
NEGATIVE_SOURCES = ("queue", "catalogue", "batch")
ENQUEUE_POINTS = ("between", "after")
ACTIVATIONS = ("relu", "gelu")


def plm_layers():
    def check(value):
        return is_int(value) or (isinstance(value, list) and len(value) > 1 and all(is_int(v) for v in value))
    return check, "an integer (hidden_states index), or a list of two or more (layer fusion, frozen mode)"


def loss_weights():
    def check(value):
        return (isinstance(value, list) and len(value) == 4 and all(is_number(w) and w >= 0 for w in value)
                and any(value))
    return check, "four weights >= 0 (seq->item, item->seq, seq->own copy, item->own copy), at least one > 0"


ADREC_KEYS = {
    # 1. item text
    "train_mode": one_of(TRAIN_MODES),
    "plm_path": string(),
    "plm_layer": plm_layers(),
    "text_fields": strings(),
    "text_prompt": string(),
    "text_separator": string(),
    "text_length": integer(1),
    "missing_text_placeholder": string(),
    "plm_batch_size": integer(1),
    "item_pooling": one_of(ITEM_POOLINGS),
    "pooling_heads": integer(1),
    "item_whitening": boolean(),
    "whitening_shrinkage": number(0, low_open=True),
    "adapter": boolean(),
    "adapter_experts": integer(1),
    "adapter_dropout": number(0, 1, high_open=True),
    "hidden_size": integer(1),
    # 2. sequence encoder
    "n_layers": integer(1),
    "n_heads": integer(1),
    "inner_size": integer(1),
    "hidden_dropout_prob": number(0, 1, high_open=True),
    "hidden_act": one_of(ACTIVATIONS),
    "layer_norm_eps": number(0, low_open=True),
    "position_embedding": boolean(),
    # 3. losses
    "arc_scale": number(0, low_open=True),
    "arc_margin": number(0, math.pi / 2, high_open=True),
    "loss_weights": loss_weights(),
    "seq_item_negatives": one_of(NEGATIVE_SOURCES),
    # 4. dual momentum queue
    "queue_size": integer(1),
    "momentum": number(0, 1),
    "enqueue": one_of(ENQUEUE_POINTS),
    "key_dropout": boolean(),
}


def check_adrec_config(config):
    """ADRec's keys, their combinations and the PLM; raises :class:`ConfigError`."""
    check_keys(config, ADREC_KEYS)
    if config["train_mode"] == "finetune" and config["seq_item_negatives"] == "catalogue":
        raise ConfigError(
            "seq_item_negatives='catalogue' re-encodes every item's text each step in finetune mode: "
            "use 'batch' or 'queue' there"
        )
    if config["item_whitening"] and (config["train_mode"] != "frozen" or config["item_pooling"] != "mean"):
        raise ConfigError("item_whitening needs train_mode='frozen' and item_pooling='mean' "
                          "(it is fitted once on fixed item vectors)")
    if isinstance(config["plm_layer"], list) and (config["train_mode"] != "frozen" or config["item_pooling"] != "mean"):
        raise ConfigError(f"plm_layer={config['plm_layer']} (layer fusion) needs train_mode='frozen' and "
                          "item_pooling='mean' (the pooled vectors of the layers are computed once): "
                          "give one layer, e.g. plm_layer: 1")
    if config["adapter_experts"] > 1 and not config["adapter"]:
        raise ConfigError(f"adapter_experts={config['adapter_experts']} needs adapter: true (the experts are the adapter): "
                          "with adapter: false set adapter_experts: 1 and adapter_dropout: 0 (as properties/ADRec-paper.yaml does)")
    if config["adapter_dropout"] and config["adapter_experts"] == 1:
        raise ConfigError(f"adapter_dropout={config['adapter_dropout']} acts on the mixture-of-experts adapter only: "
                          "set adapter_experts > 1, or adapter_dropout: 0")
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
