"""Multi-process training on the CPU (2 gloo processes): gathering across ranks, ADRec's queues
and momentum copy under DDP, evaluation equal to one process's, kill-and-resume, torchrun."""
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from recbole.utils import get_trainer

from adrec_recbole import distributed
from adrec_recbole.checkpoint import LAST_CHECKPOINT
from adrec_recbole.losses import arc_margin_catalogue_loss
from adrec_recbole.model import ADRec
from adrec_recbole.quick_start import RunError, build_config, build_dataset, run
from adrec_recbole.safe_load import data_preparation_without_pickles
from conftest import FAMILIES, ROOT, write_canonical_dataset

PAPER_TERMS = {"loss_weights": [0.3, 0.3, 0.2, 0.2], "seq_item_negatives": "queue", "key_dropout": True}
GLOBAL_TARGETS = torch.tensor([3, 5, 5, 1, 5, 8])  # rank 0 holds the first three rows, rank 1 the others
GLOBAL_HISTORY_ITEMS = torch.tensor([2, 7, 3, 9, 0, 4])


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def join_gloo(rank, port):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)


# ---- gathering, buffers, gradients: torch only --------------------------------------------------
def batch_loss_and_gradient(item_table, queries, targets, history_items):
    """Term 1 against in-batch negatives, as ADRec computes it: the batch's distinct items."""
    table = torch.nn.Parameter(item_table.clone())
    candidate_ids = torch.unique(torch.cat([history_items, targets]))
    candidates = F.normalize(table[candidate_ids], dim=-1)
    candidate_ids, candidates = distributed.gather_batch_candidates(candidate_ids, candidates)
    loss = arc_margin_catalogue_loss(queries, candidates, torch.searchsorted(candidate_ids, targets), 10.0, 0.1, None)
    loss.backward()
    return loss.detach(), table.grad


def _gathering_worker(rank, port, out_dir):
    join_gloo(rank, port)
    rows = torch.full((2 + rank, 3), float(rank)) + torch.arange(2 + rank).unsqueeze(1)  # unequal row counts
    gathered = distributed.concat_all_gather(rows)

    torch.manual_seed(0)  # the same item table and queries on both ranks
    item_table, queries = torch.randn(10, 4), F.normalize(torch.randn(6, 4), dim=-1)
    mine = slice(3 * rank, 3 * rank + 3)
    loss, gradient = batch_loss_and_gradient(item_table, queries[mine], GLOBAL_TARGETS[mine], GLOBAL_HISTORY_ITEMS[mine])
    dist.all_reduce(gradient)  # what DDP does with the gradients: their mean over ranks
    gradient /= 2
    dist.all_reduce(loss)

    class WithBuffer(torch.nn.Module):
        def __init__(self, sync):
            super().__init__()
            self.linear = torch.nn.Linear(2, 2)
            self.register_buffer("counter", torch.tensor([float(rank)]))  # differs per rank before wrapping
            if not sync:
                self.sync_buffers_each_step = False

        def forward(self, x):
            return self.linear(x)

    after_step = {}
    for sync in (True, False):
        module = WithBuffer(sync)
        wrapped = distributed.data_parallel(module)
        at_wrap = module.counter.item()
        module.counter += 10 * rank  # a rank-local change, e.g. an enqueue
        wrapped(torch.ones(1, 2)).sum().backward()
        after_step[sync] = (at_wrap, module.counter.item())
    torch.save({"gathered": gathered, "loss": loss / 2, "gradient": gradient,
                "buffers": torch.tensor([after_step[True], after_step[False]])}, os.path.join(out_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()


def test_gathering_across_two_ranks_and_buffers_synced_once(tmp_path):
    torch.multiprocessing.spawn(_gathering_worker, args=(free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=True) for rank in (0, 1)]

    expected = torch.tensor([[0.0] * 3, [1.0] * 3, [1.0] * 3, [2.0] * 3, [3.0] * 3])  # rank 0's 2 rows, rank 1's 3
    assert torch.equal(ranks[0]["gathered"], expected) and torch.equal(ranks[1]["gathered"], expected)

    # in-batch negatives of the global batch: the same loss and gradient as one process on all six rows
    torch.manual_seed(0)
    item_table, queries = torch.randn(10, 4), F.normalize(torch.randn(6, 4), dim=-1)
    one_loss, one_gradient = batch_loss_and_gradient(item_table, queries, GLOBAL_TARGETS, GLOBAL_HISTORY_ITEMS)
    for rank in ranks:
        assert torch.allclose(rank["loss"], one_loss, atol=1e-6)
        assert torch.allclose(rank["gradient"], one_gradient, atol=1e-6)
    # ... which per-rank negatives would not give (the test can fail)
    per_rank = [batch_loss_and_gradient(item_table, queries[m], GLOBAL_TARGETS[m], GLOBAL_HISTORY_ITEMS[m])[1]
                for m in (slice(0, 3), slice(3, 6))]
    assert not torch.allclose((per_rank[0] + per_rank[1]) / 2, one_gradient, atol=1e-4)

    # buffers: rank 0's at wrapping; then broadcast at every step (RecBole's models), or left alone
    assert ranks[1]["buffers"].tolist() == [[0.0, 0.0], [0.0, 10.0]]
    assert ranks[0]["buffers"].tolist() == [[0.0, 0.0], [0.0, 0.0]]


def test_one_process_never_touches_torch_distributed(quick_settings, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("torch.distributed used by a single process")

    for name in ("init_process_group", "all_gather", "all_reduce", "all_gather_object", "broadcast_object_list", "barrier"):
        monkeypatch.setattr(dist, name, refuse)
    keys = torch.randn(3, 4)
    assert distributed.concat_all_gather(keys) is keys
    result = run("ADRec", "Tiny", config_dict={**quick_settings, **PAPER_TERMS, "epochs": 1})
    assert result["world_size"] == 1 and os.path.exists(result["result_file"])


@pytest.mark.parametrize("flags, message", [
    ({"nproc": 0}, "nproc=0: expected an integer >= 1"),
    ({"nproc": 2, "world_size": 4}, "world_size=4 spans several nodes: give --ip"),
    ({"nproc": 2, "world_size": 3, "group_offset": 2, "ip": "10.0.0.1"}, "exceed world_size=3"),
    ({"nproc": 2, "model": "Pop"}, "Pop counts the items of each process's share separately"),
])
def test_bad_multi_process_settings_are_one_line_errors(quick_settings, flags, message):
    flags = dict(flags)
    with pytest.raises(RunError, match=message):
        build_config(flags.pop("model", "ADRec"), "Tiny", config_dict={**quick_settings, **flags})


# ---- ADRec through the run path in 2 processes -----------------------------------------------
def _two_rank_run_worker(local_rank, settings, dataset, out_dir):
    """One rank of a 2-process run of the run path, recording what the last enqueue saw."""
    last_enqueue = {}
    enqueue = ADRec._enqueue

    def recording_enqueue(self, momentum_targets, momentum_sequences):
        enqueue(self, momentum_targets, momentum_sequences)
        last_enqueue.update(item_keys=momentum_targets.clone(), sequence_keys=momentum_sequences.clone(),
                            state={key: value.clone() for key, value in self.state_dict().items()})

    ADRec._enqueue = recording_enqueue
    result = run("ADRec", dataset, config_dict={**settings, "local_rank": local_rank})
    torch.save(last_enqueue, os.path.join(out_dir, f"rank{local_rank}.pth"))
    with open(os.path.join(out_dir, f"rank{local_rank}.json"), "w") as handle:
        json.dump({key: result[key] for key in ("test_result", "best_valid_result", "checkpoint", "world_size")}, handle)


def one_process_evaluation(settings, dataset, model_file):
    config = build_config("ADRec", dataset, config_dict=settings)
    train_data, valid_data, test_data = data_preparation_without_pickles(config, build_dataset(config))
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, ADRec(config, train_data.dataset))
    return {split: dict(trainer.evaluate(data, model_file=model_file)) for split, data in
            (("valid", valid_data), ("test", test_data))}


def test_two_processes_hold_the_same_queues_with_keys_of_both_and_evaluate_as_one(quick_settings, tmp_path):
    # 61 users: DistributedSampler repeats one to give both ranks 31; the evaluation must not count it twice
    rng = random.Random(1)
    titles = [title for family in FAMILIES.values() for title in family]
    sequences = [[(user % 3) * 4 + (start + step) % 4 for step in range(rng.randint(5, 9))]
                 for user, start in zip(range(61), (rng.randrange(4) for _ in range(61)))]
    write_canonical_dataset(tmp_path / "data", "Tiny61", sequences, titles)
    settings = {**quick_settings, **PAPER_TERMS, "data_path": str(tmp_path / "data"), "epochs": 2,
                "metrics": ["Recall", "NDCG", "MRR", "Hit", "Precision"], "topk": [1, 3, 10]}
    two_ranks = {"nproc": 2, "world_size": 2, "offset": 0, "ip": "127.0.0.1", "port": free_port()}
    torch.multiprocessing.spawn(_two_rank_run_worker, args=({**settings, **two_ranks}, "Tiny61", str(tmp_path)),
                                nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{rank}.pth", weights_only=True) for rank in (0, 1)]

    states = [rank["state"] for rank in ranks]
    assert states[0].keys() == states[1].keys()
    for key in states[0]:  # online and momentum towers, both queues, both pointers
        assert torch.equal(states[0][key], states[1][key]), key
    assert not torch.equal(states[0]["momentum_tower.adapter.0.weight"], states[0]["online.adapter.0.weight"])
    for queue, keys in (("item_queue", "item_keys"), ("sequence_queue", "sequence_keys")):
        mine, theirs = ranks[0][keys], ranks[1][keys]
        rows = mine.size(0) + theirs.size(0)
        assert mine.size(0) == theirs.size(0) > 0 and not torch.equal(mine, theirs)
        vectors, pointer = states[0][f"{queue}.vectors"], int(states[0][f"{queue}.pointer"])
        newest = vectors[(pointer - rows + torch.arange(rows)) % vectors.size(0)]
        assert torch.equal(newest, torch.cat([mine, theirs]))  # rank 0's keys, then rank 1's, on both ranks

    results = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert results[0]["world_size"] == 2 and results[0]["test_result"] == results[1]["test_result"]
    alone = one_process_evaluation(settings, "Tiny61", results[0]["checkpoint"])
    assert results[0]["test_result"] == alone["test"]
    assert results[0]["best_valid_result"] == alone["valid"]


# ---- the command line: kill -9 both processes mid-run, resume; torchrun ---------------------------
def command(args, launcher=()):
    """``run_recbole.py`` in its own process group on one thread per process."""
    return subprocess.Popen([sys.executable, *launcher, str(ROOT / "run_recbole.py"), *args], cwd=ROOT,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_kill_and_resume_with_two_processes_gives_the_metrics_of_the_uninterrupted_run(tiny_data_root, tmp_path):
    saved = tmp_path / "saved"
    common = [
        "--model=ADRec", "--dataset=Tiny", f"--data_path={tiny_data_root}", f"--checkpoint_dir={saved}",
        f"--plm_cache_dir={tmp_path / 'cache'}", "--epochs=2", "--train_batch_size=8", "--hidden_size=32",
        "--n_layers=1", "--n_heads=2", "--inner_size=64", "--queue_size=50", "--topk=[10]", "--state=INFO",
        "--loss_weights=[0.3,0.3,0.2,0.2]", "--seq_item_negatives=queue", "--key_dropout=True",
    ]

    def finish(args, launcher=()):
        process = command(common + args, launcher)
        output, _ = process.communicate(timeout=600)
        assert process.returncode == 0, output[-3000:]
        return json.loads((saved / args[0].split("=")[1] / "result.json").read_text())

    # the uninterrupted run is launched by torchrun: the same processes as --nproc=2, so the same metrics
    straight = finish(["--run_name=straight"], ["-m", "torch.distributed.run", "--nproc_per_node=2",
                                                f"--master_port={free_port()}"])
    folder = saved / "killed"
    process = command(common + ["--run_name=killed", "--nproc=2"])
    deadline = time.time() + 300
    while not (folder / LAST_CHECKPOINT).exists():  # written by rank 0 as epoch 1 starts
        assert process.poll() is None and time.time() < deadline, "run ended before epoch 1 started"
        time.sleep(0.05)
    time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)  # the launcher and both training processes
    process.communicate()
    assert not (folder / "result.json").exists()

    refused = command(common + ["--run_name=killed", "--nproc=2"])
    output, _ = refused.communicate(timeout=300)
    assert refused.returncode == 2, output[-3000:]
    assert output.strip().splitlines()[-1].startswith("error: this run was started before")

    resumed = finish(["--run_name=killed", "--nproc=2", "--resume"])
    assert resumed["resumed_at_epoch"] == 1 and resumed["epochs_run"] == 2 and resumed["world_size"] == 2
    assert resumed["best_valid_result"] == straight["best_valid_result"]
    assert resumed["test_result"] == straight["test_result"]
