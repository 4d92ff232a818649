"""Milliseconds per ADRec training step: the pre-change step against the current one.

Commit 9b38aec made ``ADRec.calculate_loss`` build and compute only what an active loss term
reads; before it, every step ran the momentum copy and both queues whatever the loss weights.
:class:`EveryStepWorkADRec` keeps that old step as the reference ("old"); ``ADRec`` is the
current one ("new"). For each configuration of :data:`STEP_CONFIGURATIONS`:

* both models are built from the same seed (same weights, same queues) and trained, each with
  its own Adam, on the same batches of real data, in this process;
* one warm-up step per path on the first batch, not timed, each from the same random state:
  its four loss terms are reported; they agree between the paths when the current step needs
  no momentum key (the default) or makes its keys as the old one did (``key_dropout`` true, as
  in ``paper loss (frozen)``, or dropout 0);
* then the timed steps, in ``repeats`` blocks: in each block both paths run the same batches,
  one path after the other, the first path alternating from block to block, so that background
  load falls on both alike;
* a step is ``zero_grad``, ``calculate_loss``, ``backward`` and the optimizer step.

Reported per path: the median and the mean of the per-step times (ms); ``old_over_new`` is the
ratio of the medians.
"""
import copy
import statistics
import time

import torch
from recbole.utils import init_seed

from adrec_recbole.dataset import ADRecDataset
from adrec_recbole.losses import arc_margin_contrastive_loss
from adrec_recbole.model import ADRec
from adrec_recbole.momentum import VectorQueue, momentum_update
from adrec_recbole.quick_start import build_config, prepare_data
from adrec_recbole.safe_load import data_preparation_without_pickles

# Settings on top of properties/model/ADRec.yaml. "paper loss (frozen)": the paper's loss and
# sequence encoder with the frozen vectors and adapter of the defaults.
STEP_CONFIGURATIONS = {
    "default": {},
    "paper loss (frozen)": {
        "train_mode": "frozen", "loss_weights": [0.3, 0.3, 0.2, 0.2], "seq_item_negatives": "queue",
        "arc_scale": 18.0, "arc_margin": 0.1, "hidden_dropout_prob": 0.0, "n_layers": 3, "inner_size": 1024,
        "queue_size": 10000, "train_batch_size": 64, "enqueue": "between", "key_dropout": True,
        "learning_rate": 4e-4,
    },
}


class EveryStepWorkADRec(ADRec):
    """The pre-change code, kept as the reference: ADRec's training step as of commit c874cc0
    (``git show c874cc0:adrec_recbole/model.py``), before 9b38aec.

    Whatever the loss weights, it builds the momentum copy (kept in training mode: its keys see
    dropout, as before) and both queues, and every step runs the momentum update, a full
    momentum forward (sequences and targets), four queue snapshots and both enqueues.
    """

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        hidden_size = self.online.sequence_encoder.transformer.layers[0].self_attn.embed_dim
        if self.momentum_tower is None:
            self.momentum_tower = copy.deepcopy(self.online).requires_grad_(False)
        if self.item_queue is None:
            self.item_queue = VectorQueue(config["queue_size"], hidden_size)
        if self.sequence_queue is None:
            self.sequence_queue = VectorQueue(config["queue_size"], hidden_size)
        self.key_dropout = True  # ADRec.train() then leaves the momentum copy in training mode

    def calculate_loss(self, interaction):
        """The four weighted terms, with all of the old step's work (its code, unchanged)."""
        item_seq, item_seq_len = self._recent_history(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        target = interaction[self.POS_ITEM_ID]
        whole_catalogue = self.seq_item_negatives == "catalogue"
        sequences, targets, candidate_ids, candidates = self._encode_batch(
            self.online, item_seq, item_seq_len, target, whole_catalogue
        )
        with torch.no_grad():
            momentum_update(self.online, self.momentum_tower, self.momentum)
            momentum_sequences, momentum_targets, _, _ = self._encode_batch(
                self.momentum_tower, item_seq, item_seq_len, target, whole_catalogue=False
            )

        def contrast(query, positive, negatives):
            return arc_margin_contrastive_loss(query, positive, negatives, self.arc_scale, self.arc_margin)

        w1, w2, w3, w4 = self.loss_weights
        zero = sequences.new_zeros(())
        item_negatives, sequence_negatives = self.item_queue.snapshot(), self.sequence_queue.snapshot()
        seq_to_item = self._sequence_to_item_loss(
            sequences, momentum_targets, target, candidate_ids, candidates, item_negatives
        ) if w1 else zero
        item_to_seq = contrast(targets, momentum_sequences, sequence_negatives) if w2 else zero
        if self.enqueue_point == "between":
            self._enqueue(momentum_targets, momentum_sequences)
            item_negatives, sequence_negatives = self.item_queue.snapshot(), self.sequence_queue.snapshot()
        seq_to_own = contrast(sequences, momentum_sequences, sequence_negatives) if w3 else zero
        item_to_own = contrast(targets, momentum_targets, item_negatives) if w4 else zero
        if self.enqueue_point == "after":
            self._enqueue(momentum_targets, momentum_sequences)
        return w1 * seq_to_item, w2 * item_to_seq, w3 * seq_to_own, w4 * item_to_own


PATHS = {"old": EveryStepWorkADRec, "new": ADRec}


def what_a_step_builds(model):
    """The momentum-side parts a model holds, in words."""
    parts = [name for name, part in (("momentum copy", model.momentum_tower), ("item queue", model.item_queue),
                                     ("sequence queue", model.sequence_queue)) if part is not None]
    return ", ".join(parts) or "online tower only"


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_step(model, optimizer, batch, device):
    """One training step: (seconds, its four weighted loss terms)."""
    synchronize(device)
    start = time.perf_counter()
    optimizer.zero_grad()
    terms = model.calculate_loss(batch)
    sum(terms).backward()
    optimizer.step()
    synchronize(device)
    return time.perf_counter() - start, [round(term.item(), 6) for term in terms]


def block_sizes(steps, repeats):
    """``steps`` split into ``repeats`` blocks as even as possible (no empty block)."""
    blocks = max(1, min(repeats, steps))
    return [steps // blocks + (block < steps % blocks) for block in range(blocks)]


def measure_configuration(dataset, settings, steps, repeats):
    """Old and new step on one configuration (``settings``: RecBole/ADRec settings)."""
    config = build_config("ADRec", dataset, config_dict=settings)
    prepare_data(config)
    init_seed(config["seed"], config["reproducibility"])
    train_data, _, _ = data_preparation_without_pickles(config, ADRecDataset(config))
    device = config["device"]
    batches = [batch.to(device) for _, batch in zip(range(steps + 1), train_data)]
    models, optimizers = {}, {}
    for path, model_class in PATHS.items():
        init_seed(config["seed"], config["reproducibility"])
        models[path] = model_class(config, train_data.dataset).to(device).train()
        trainable = [parameter for parameter in models[path].parameters() if parameter.requires_grad]
        optimizers[path] = torch.optim.Adam(trainable, lr=config["learning_rate"])

    warmup_terms, step_seconds = {}, {path: [] for path in PATHS}
    for path in PATHS:
        torch.manual_seed(config["seed"])  # the same dropout masks in both online towers
        _, warmup_terms[path] = timed_step(models[path], optimizers[path], batches[0], device)
    blocks, first_batch = block_sizes(steps, repeats), 1
    for block, size in enumerate(blocks):
        block_batches = [batches[index % len(batches)] for index in range(first_batch, first_batch + size)]
        first_batch += size
        for path in (list(PATHS) if block % 2 == 0 else list(PATHS)[::-1]):
            for batch in block_batches:
                step_seconds[path].append(timed_step(models[path], optimizers[path], batch, device)[0])

    result = {"train_batch_size": config["train_batch_size"], "timed_steps_per_path": steps,
              "blocks": len(blocks), "warmup_loss_terms": warmup_terms}
    for path, seconds in step_seconds.items():
        result[path] = {
            "builds": what_a_step_builds(models[path]),
            "median_ms": round(1000 * statistics.median(seconds), 2),
            "mean_ms": round(1000 * statistics.fmean(seconds), 2),
        }
    result["old_over_new"] = round(statistics.median(step_seconds["old"]) / statistics.median(step_seconds["new"]), 2)
    return result


def measure_step_times(dataset, base_settings, steps, repeats, configurations=STEP_CONFIGURATIONS):
    """:func:`measure_configuration` for each configuration (its settings over ``base_settings``)."""
    results = {}
    for name, settings in configurations.items():
        results[name] = {"settings": settings,
                         **measure_configuration(dataset, {**base_settings, **settings}, steps, repeats)}
        print(f"step time, {name}: old {results[name]['old']['median_ms']} ms, new {results[name]['new']['median_ms']} "
              f"ms (medians), old/new {results[name]['old_over_new']}", flush=True)
    return results
