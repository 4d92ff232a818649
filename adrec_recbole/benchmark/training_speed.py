r"""Training speed of ADRec, measured in one invocation on real data.

    OMP_NUM_THREADS=1 python -m adrec_recbole.benchmark.training_speed --dataset Scientific \
        --data_path ../shared/datasets --steps 200 --reference_steps 5 --batch_size 32 --threads 1 \
        --out results/speed
    python -m adrec_recbole.benchmark.training_speed --dataset Scientific --data_path ../shared/datasets \
        --sections step --steps 100 --threads 1 --out /tmp/speed      # one part only

``--sections`` picks the parts to run (default all three; they run in this order):

* ``step`` (:mod:`adrec_recbole.benchmark.step_time`): ms per training step of the pre-change
  step (momentum copy and both queues built, run and filled every step whatever the loss
  weights) against the current one (only what an active loss term reads), on the same batches in
  this process, for ADRec's defaults and for the paper's loss with frozen vectors. ``--steps``
  timed steps per path and configuration after one warm-up step, in ``--step_repeats`` blocks
  whose first path alternates; the median and mean ms per step and the ratio old/new of the
  medians.
* ``epoch`` (:mod:`adrec_recbole.benchmark.epoch_time`): seconds for one epoch (training +
  validation) and the peak RSS of each of ``--epoch_models`` (ADRec with its defaults), each
  run through ``adrec_recbole.quick_start.run`` in a fresh process with the same thread count.
* ``finetune``: steps/s of three item-encoding paths trained on the same batches with the
  paper's four terms, batch ``--batch_size``, queue ``--queue_size``, PLM ``--plm_path`` read at
  ``--plm_layer`` (these four options apply to this section only):

  - ``frozen``: PLM vectors computed once, the sequence encoder trained on them (no adapter
    here, as in the paper);
  - ``finetune``: gradients reach the PLM layers in use; the PLM is built only up to
    ``plm_layer`` and each distinct item of a batch is encoded once;
  - ``authors``: the reference: the whole PLM runs (all layers, ``hidden_states[plm_layer]``
    read out), every history slot is encoded separately (no de-duplication) over the full
    ``text_length`` tokens, as the authors' code does.

  ``--steps`` steps of the first two, ``--reference_steps`` of the third; steps/s excludes the
  first step. Also reported: items encoded per step and the mean loss of the first and last 20
  steps. The queues start as random unit vectors, easy negatives, so the loss first rises while
  real keys fill them; the first window therefore starts once the queues have been filled
  (``--queue_size`` / batch steps; 1,024 by default so that a few hundred steps see it refilled
  several times; the paper uses 10,000).

Writes ``training_speed_<Dataset>.json`` and ``.md`` to ``--out`` and prints the Markdown: the
figures of the sections run by this invocation (files from an earlier invocation are replaced),
with the device, thread count, date, git commit and command line.
"""
import argparse
import copy
import json
import os
import platform
import resource
import shlex
import sys
import time

import torch
from recbole.utils import init_seed
from tqdm import tqdm

from adrec_recbole.benchmark.epoch_time import measure_epochs
from adrec_recbole.benchmark.step_time import measure_step_times
from adrec_recbole.benchmark.worker import git_commit
from adrec_recbole.dataset import ADRecDataset
from adrec_recbole.model import ADRec
from adrec_recbole.quick_start import build_config, prepare_data
from adrec_recbole.safe_load import data_preparation_without_pickles
from adrec_recbole.text_encoder import masked_mean, resolve_plm_path

SECTIONS = ("step", "epoch", "finetune")


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

    def _encode_batch(self, tower, item_seq, item_seq_len, target, whole_catalogue=False, with_sequences=True):
        slots = torch.cat([item_seq.flatten(), target]) if with_sequences else target
        vectors = tower.encode_items(self._item_inputs(slots))
        normalize = torch.nn.functional.normalize
        sequences = None
        if with_sequences:
            seq_items = vectors[:-target.numel()].view(*item_seq.shape, -1)
            sequences = normalize(tower.sequence_encoder(seq_items, item_seq_len), dim=-1)
        return sequences, normalize(vectors[-target.numel():], dim=-1), slots, normalize(vectors, dim=-1)


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


def measure_encoding_paths(args, base_settings):
    """The finetune section: frozen, finetune and the authors' path on the paper's loss."""
    settings = {
        **base_settings, "plm_path": args.plm_path, "plm_layer": args.plm_layer,
        "train_batch_size": args.batch_size, "seq_item_negatives": "queue", "adapter": False,
        "learning_rate": 4e-4, "queue_size": args.queue_size, "loss_weights": [0.3, 0.3, 0.2, 0.2],
        "hidden_dropout_prob": 0.0, "key_dropout": True, "arc_scale": 18.0, "arc_margin": 0.1,
        "n_layers": 3, "inner_size": 1024,
    }
    queue_fill_steps = -(-args.queue_size // args.batch_size)
    config = build_config("ADRec", args.dataset, config_dict=settings)
    prepare_data(config)
    init_seed(config["seed"], config["reproducibility"])
    train_data, _, _ = data_preparation_without_pickles(config, ADRecDataset(config))
    batches = [batch.to(config["device"]) for _, batch in zip(range(max(args.steps, args.reference_steps)), train_data)]

    paths = {}
    for mode, steps in (("frozen", args.steps), ("finetune", args.steps), ("authors", args.reference_steps)):
        mode_config = build_config("ADRec", args.dataset, config_dict={
            **settings, "train_mode": "frozen" if mode == "frozen" else "finetune",
        })
        init_seed(config["seed"], True)
        model_class = AuthorsStyleADRec if mode == "authors" else ADRec
        model = model_class(mode_config, train_data.dataset).to(config["device"])
        paths[mode] = measure(model, batches, steps, config["learning_rate"], mode,
                              queue_fill_steps if steps > 2 * queue_fill_steps else 0)
        del model
    return {
        "plm": resolve_plm_path(args.plm_path), "plm_layer": args.plm_layer, "batch_size": args.batch_size,
        "queue_size": args.queue_size, "paths": paths,
        "finetune_speedup_vs_authors": round(paths["finetune"]["steps_per_second"]
                                             / paths["authors"]["steps_per_second"], 1),
    }


# ---- Markdown ------------------------------------------------------------------------------
def step_markdown(step):
    first = next(iter(step.values()))
    lines = [
        "## Training step: old path (momentum copy and both queues every step) vs new (only what an active term reads)",
        "",
        "old: `step_time.EveryStepWorkADRec`, the step before commit 9b38aec; new: `ADRec`. "
        f"{first['timed_steps_per_path']} timed steps per path and configuration after one warm-up step, in "
        f"{first['blocks']} blocks on the same batches, the first path alternating; ms per step as median (mean).",
        "",
        "| configuration | batch | old: builds | old ms/step | new: builds | new ms/step | old/new (medians) "
        "| warm-up step loss, old / new |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in step.items():
        old, new = row["old"], row["new"]
        warmup = {path: sum(terms) for path, terms in row["warmup_loss_terms"].items()}
        lines.append(
            f"| {name} | {row['train_batch_size']} | {old['builds']} | {old['median_ms']} ({old['mean_ms']}) "
            f"| {new['builds']} | {new['median_ms']} ({new['mean_ms']}) | **{row['old_over_new']}x** "
            f"| {warmup['old']:.4f} / {warmup['new']:.4f} |"
        )
    return lines


def epoch_markdown(epoch):
    lines = [
        "## One epoch through quick_start.run, each model in a fresh process",
        "",
        "| model | s for the epoch (train + validation) | test evaluation s | whole run s | peak RSS MB | parameters |",
        "|---|---|---|---|---|---|",
    ]
    for model, row in epoch.items():
        if row["status"] != "ok":
            lines.append(f"| {model} | failed: {row['error'][:200]} | | | | |")
            continue
        lines.append(f"| {model} | {row['fit_seconds']} | {row['test_eval_seconds']} | {row['wall_seconds']} "
                     f"| {row['peak_rss_mb']} | {row['parameters']} |")
    return lines


def finetune_markdown(finetune):
    lines = [
        f"## Item-encoding paths, paper's loss, batch {finetune['batch_size']}, queue {finetune['queue_size']}, "
        f"PLM layer {finetune['plm_layer']}",
        "",
        "| path | steps | steps/s | items through the PLM per step | loss, first -> last 20 steps after the queues filled |",
        "|---|---|---|---|---|",
    ]
    for mode, row in finetune["paths"].items():
        lines.append(
            f"| {mode} | {row['steps']} | {row['steps_per_second']} | {row['items_through_plm_per_step']} | "
            f"{row['loss_first_steps']} -> {row['loss_last_steps']} |"
        )
    lines += ["", f"finetune is {finetune['finetune_speedup_vs_authors']}x the authors' path; process peak RSS "
                  f"after this section {finetune['process_peak_rss_mb']} MB"]
    return lines


MARKDOWN = {"step": step_markdown, "epoch": epoch_markdown, "finetune": finetune_markdown}


def device_description():
    """The device the models train on (RecBole's choice: the GPU when there is one), in words."""
    if torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name()})"
    return f"cpu ({platform.machine()}, {os.cpu_count()} cores)"


def peak_rss_mb():
    """Peak resident memory of this process so far."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def parse_list(text, allowed=None):
    """``'a,b'`` -> ``['a', 'b']`` (``''`` -> ``[]``), each checked against ``allowed`` if given."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if allowed is not None and name not in allowed]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown {unknown}: choose from {', '.join(allowed)}")
    return names


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="Scientific")
    parser.add_argument("--data_path", default="dataset/")
    parser.add_argument("--sections", type=lambda text: parse_list(text, SECTIONS), default=list(SECTIONS),
                        help="comma-separated, of step,epoch,finetune (default all)")
    parser.add_argument("--steps", type=int, default=300,
                        help="timed steps per path: per configuration in step, of frozen and finetune in finetune")
    parser.add_argument("--step_repeats", type=int, default=10, help="step: blocks the timed steps are split into")
    parser.add_argument("--epoch_models", type=parse_list, default=["ADRec", "SASRec"],
                        help="epoch: comma-separated models ('' for none)")
    parser.add_argument("--plm_path", default="bundled-minilm", help="finetune")
    parser.add_argument("--plm_layer", type=int, default=1, help="finetune (paper: 1)")
    parser.add_argument("--batch_size", type=int, default=64, help="finetune (paper: 64)")
    parser.add_argument("--reference_steps", type=int, default=20, help="finetune: steps of the authors' path")
    parser.add_argument("--queue_size", type=int, default=1024, help="finetune (paper: 10000)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default="results/speed")
    args = parser.parse_args(argv)
    args.sections = [section for section in SECTIONS if section in args.sections]
    sys.argv = sys.argv[:1]  # RecBole's Config would read --key=value options as settings
    if args.threads:
        torch.set_num_threads(args.threads)

    omp = os.environ.get("OMP_NUM_THREADS")
    summary = {
        "dataset": args.dataset,
        "command": (f"OMP_NUM_THREADS={omp} " if omp else "")
        + shlex.join(["python", "-m", "adrec_recbole.benchmark.training_speed", *argv]),
        "git_commit": git_commit(), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "device": device_description(), "threads": torch.get_num_threads(), "sections": args.sections,
    }
    base_settings = {"data_path": args.data_path, "state": "WARNING"}
    for section in args.sections:
        if section == "step":
            summary["step"] = measure_step_times(args.dataset, base_settings, args.steps, args.step_repeats)
        elif section == "epoch":
            summary["epoch"] = measure_epochs(args.epoch_models, args.dataset, args.data_path, summary["threads"])
        else:
            summary["finetune"] = measure_encoding_paths(args, base_settings)
            summary["finetune"]["process_peak_rss_mb"] = peak_rss_mb()
    summary["process_peak_rss_mb"] = peak_rss_mb()

    lines = [
        f"# ADRec training speed on {args.dataset}",
        "",
        f"{summary['date']}, commit {summary['git_commit']}, {summary['device']}, {summary['threads']} threads; "
        f"produced by `{summary['command']}`",
    ]
    for section in args.sections:
        if summary[section]:
            lines += ["", *MARKDOWN[section](summary[section])]
    table = "\n".join(lines)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, f"training_speed_{args.dataset}.json"), "w") as handle:
        json.dump(summary, handle, indent=2)
    with open(os.path.join(args.out, f"training_speed_{args.dataset}.md"), "w") as handle:
        handle.write(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
