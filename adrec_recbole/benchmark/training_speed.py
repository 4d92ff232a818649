"""Training speed of ADRec's item-encoding paths, measured in one run on real data.

    python -m adrec_recbole.benchmark.training_speed --dataset Scientific --data_path ../shared/datasets

Three paths train on the same batches with the same loss (the paper's four terms):

* ``frozen``   — PLM vectors computed once, a trainable adapter on top (the CPU default);
* ``finetune`` — gradients reach the PLM layers in use; the PLM is built only up to
  ``plm_layer`` and each distinct item of a batch is encoded once;
* ``authors``  — the reference: the whole PLM runs (all layers, ``hidden_states[plm_layer]``
  read out), every history slot is encoded separately (no de-duplication) over the full
  ``text_length`` tokens, as the authors' code does.

Prints steps/s, items encoded per step and the mean loss of the first and last 20 steps, and
writes them as JSON and Markdown to ``--out``. The queues start as random unit vectors, easy
negatives, so the loss first rises while real keys fill them; the first window therefore starts
once the queues have been filled (``--queue_size`` / batch steps; 1,024 here so that a few
hundred steps see it refilled several times — the paper uses 10,000).
"""
import argparse
import copy
import json
import os
import resource
import time

import torch
from recbole.data import data_preparation
from recbole.utils import init_seed
from tqdm import tqdm

from adrec_recbole.dataset import ADRecDataset
from adrec_recbole.model import ADRec
from adrec_recbole.quick_start import build_config, prepare_data
from adrec_recbole.text_encoder import masked_mean, resolve_plm_path


class FullDepthPLMEncoder(torch.nn.Module):
    """Reference encoder: runs every PLM layer and reads ``hidden_states[layer]``, no trimming."""

    def __init__(self, plm, layer):
        super().__init__()
        self.plm, self.layer = plm, layer

    def forward(self, input_ids, attention_mask):
        hidden = self.plm(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        return masked_mean(hidden.hidden_states[self.layer], attention_mask)


class AuthorsStyleADRec(ADRec):
    """ADRec whose item encoding follows the authors' code: full PLM, one encode per slot."""

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        from transformers import AutoModel

        full_plm = AutoModel.from_pretrained(resolve_plm_path(config["plm_path"]), add_pooling_layer=False)
        layer = len(self.online.plm.plm.encoder.layer)
        self.online.plm = FullDepthPLMEncoder(full_plm, layer)
        self.momentum_tower = copy.deepcopy(self.online).requires_grad_(False)

    def _encode_batch(self, tower, item_seq, item_seq_len, target, whole_catalogue):
        slots = torch.cat([item_seq.flatten(), target])
        vectors = tower.encode_items(self._item_inputs(slots))
        seq_items = vectors[:item_seq.numel()].view(*item_seq.shape, -1)
        sequences = tower.sequence_encoder(seq_items, item_seq_len)
        normalize = torch.nn.functional.normalize
        return normalize(sequences, dim=-1), normalize(vectors[item_seq.numel():], dim=-1), slots, normalize(vectors, dim=-1)


def items_encoded_per_step(model, batch):
    """How many item texts one step passes through the PLM (online copy; the momentum copy repeats it)."""
    item_seq, _ = model._recent_history(batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN])
    slots = torch.cat([item_seq.flatten(), batch[model.POS_ITEM_ID]])
    if isinstance(model, AuthorsStyleADRec):
        return slots.numel()
    return 0 if model.train_mode == "frozen" else int(torch.unique(slots).numel())


def measure(model, batches, steps, learning_rate, description, queue_fill_steps):
    """Train ``steps`` steps; steps/s excludes the first (warm-up) step; the loss windows are
    taken after ``queue_fill_steps``."""
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=learning_rate)
    model.train()
    losses, encoded, start = [], [], None
    for step in tqdm(range(steps), desc=description, unit="step"):
        batch = batches[step % len(batches)]
        if step == 1:
            start = time.perf_counter()
        optimizer.zero_grad()
        loss = sum(model.calculate_loss(batch))
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        encoded.append(items_encoded_per_step(model, batch))
    seconds = time.perf_counter() - start
    settled = losses[queue_fill_steps:] or losses
    window = max(1, min(20, len(settled) // 4))
    return {
        "steps": steps,
        "steps_per_second": round((steps - 1) / seconds, 3),
        "items_through_plm_per_step": round(sum(encoded) / len(encoded), 1),
        "loss_first_steps": round(sum(settled[:window]) / window, 4),
        "loss_last_steps": round(sum(settled[-window:]) / window, 4),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="Scientific")
    parser.add_argument("--data_path", default="dataset/")
    parser.add_argument("--plm_path", default="bundled-minilm")
    parser.add_argument("--plm_layer", type=int, default=1, help="paper: 1")
    parser.add_argument("--batch_size", type=int, default=64, help="paper: 64")
    parser.add_argument("--steps", type=int, default=300, help="steps of the frozen and finetune paths")
    parser.add_argument("--reference_steps", type=int, default=20, help="steps of the authors' path")
    parser.add_argument("--queue_size", type=int, default=1024, help="paper: 10000")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default="results/speed")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    settings = {
        "data_path": args.data_path, "plm_path": args.plm_path, "plm_layer": args.plm_layer,
        "train_batch_size": args.batch_size, "seq_item_negatives": "queue", "adapter": False,
        "learning_rate": 4e-4, "state": "WARNING", "plm_cache_dir": "cache/",
        "queue_size": args.queue_size, "loss_weights": [0.3, 0.3, 0.2, 0.2], "hidden_dropout_prob": 0.0,
        "arc_scale": 18.0, "arc_margin": 0.1, "n_layers": 3, "inner_size": 1024,
    }
    queue_fill_steps = -(-args.queue_size // args.batch_size)
    config = build_config("ADRec", args.dataset, config_dict=settings)
    prepare_data(config)
    init_seed(config["seed"], config["reproducibility"])
    train_data, _, _ = data_preparation(config, ADRecDataset(config))
    batches = [batch.to(config["device"]) for _, batch in zip(range(max(args.steps, args.reference_steps)), train_data)]

    results = {}
    for mode, steps in (("frozen", args.steps), ("finetune", args.steps), ("authors", args.reference_steps)):
        mode_config = build_config("ADRec", args.dataset, config_dict={
            **settings, "train_mode": "frozen" if mode == "frozen" else "finetune",
        })
        init_seed(config["seed"], True)
        model_class = AuthorsStyleADRec if mode == "authors" else ADRec
        model = model_class(mode_config, train_data.dataset).to(config["device"])
        results[mode] = measure(model, batches, steps, config["learning_rate"], mode,
                                queue_fill_steps if steps > 2 * queue_fill_steps else 0)
        del model
    results["finetune"]["speedup_vs_authors"] = round(
        results["finetune"]["steps_per_second"] / results["authors"]["steps_per_second"], 1
    )
    summary = {
        "dataset": args.dataset, "plm": resolve_plm_path(args.plm_path), "plm_layer": args.plm_layer,
        "batch_size": args.batch_size, "threads": torch.get_num_threads(), "device": str(config["device"]),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "results": results,
    }
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, f"training_speed_{args.dataset}.json"), "w") as handle:
        json.dump(summary, handle, indent=2)
    lines = [
        f"ADRec training speed on {args.dataset}, batch {args.batch_size}, PLM layer {args.plm_layer}, "
        f"{summary['threads']} threads, {summary['device']}",
        "",
        "| path | steps | steps/s | items through the PLM per step | loss, first -> last 20 steps after the queues filled |",
        "|---|---|---|---|---|",
    ]
    for mode, row in results.items():
        lines.append(
            f"| {mode} | {row['steps']} | {row['steps_per_second']} | {row['items_through_plm_per_step']} | "
            f"{row['loss_first_steps']} -> {row['loss_last_steps']} |"
        )
    lines.append(f"\nfinetune is {results['finetune']['speedup_vs_authors']}x the authors' path; peak RSS {summary['peak_rss_mb']} MB")
    table = "\n".join(lines)
    with open(os.path.join(args.out, f"training_speed_{args.dataset}.md"), "w") as handle:
        handle.write(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
