"""Multi-process training (DistributedDataParallel), RecBole's ``run(..., nproc=N)`` for any
model of the run path, ADRec included. One code path for GPUs and CPUs: only the backend
differs (``nccl`` on CUDA devices, ``gloo`` on the CPU).

* Launching: :func:`spawn` starts ``nproc`` processes on this node (RecBole's flags ``--nproc``,
  ``--world_size``, ``--group_offset``, ``--ip``, ``--port``); :func:`torchrun_settings` maps
  the environment ``torchrun`` sets to the same keys. Each process builds its own RecBole
  ``Config``, which calls :func:`init_process` (:mod:`adrec_recbole.compat`).
* The model: RecBole's trainer wraps it with :func:`data_parallel` (DDP; gradients averaged
  over ranks). A model whose buffers stay identical on every rank by construction sets
  ``sync_buffers_each_step = False``; its buffers are then synced once, at wrapping, instead
  of being broadcast from rank 0 at every step (ADRec: frozen item vectors and two queues).
* Gathering across ranks, as MoCo (facebookresearch/moco, ``builder.py``): keys are
  concatenated from every rank (:func:`concat_all_gather`) before one identical enqueue on
  every rank; :func:`gather_batch_candidates` gives in-batch negatives of the global batch,
  with gradients flowing back to the rank that encoded each vector.
* Evaluation: :class:`ExactEvaluationMixin` gathers every rank's ranked rows and scores them
  once, so a multi-process evaluation equals a one-process evaluation of the same weights
  (RecBole's own reduction averages per-rank metrics that are already rounded, weighted by
  batches, and counts the users DistributedSampler repeats to even out the ranks).

In a single process none of this runs: every function here returns its input unchanged.
"""
import contextlib
import os
import socket

import torch
import torch.distributed as dist
from recbole.evaluator import Collector
from torch.nn.parallel import DistributedDataParallel

ROW_KEYS = ("rec.topk", "rec.meanrank", "rec.score", "rec.items", "data.label")  # one row per evaluated sample
TORCHRUN_VARIABLES = ("LOCAL_RANK", "RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


# ---- where this process stands ----------------------------------------------------------
def is_distributed():
    return dist.is_available() and dist.is_initialized()


def rank():
    """The global rank (0 in a single process)."""
    return dist.get_rank() if is_distributed() else 0


def world_size():
    return dist.get_world_size() if is_distributed() else 1


def is_main_process():
    """Global rank 0 alone writes checkpoints, logs and results."""
    return rank() == 0


def barrier():
    if is_distributed():
        dist.barrier()


def broadcast_from_main(value):
    """Global rank 0's ``value`` (any picklable object), on every rank."""
    if not is_distributed():
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def all_gather_objects(value):
    """Every rank's ``value``, in rank order, on every rank (``[value]`` in one process)."""
    if not is_distributed():
        return [value]
    gathered = [None] * world_size()
    dist.all_gather_object(gathered, value)
    return gathered


@contextlib.contextmanager
def main_process_first():
    """Rank 0 runs the block first (filling caches), the other ranks after it."""
    if not is_main_process():
        barrier()
    yield
    if is_main_process():
        barrier()


def close(error_type=None, error=None, traceback=None):
    """Leave the process group (an ``ExitStack.push`` callback). After a run that ended normally,
    every rank first waits for the others, so that none closes its connections while a peer
    still reads from them (a torchrun rank once aborted at exit, code -6, after its results);
    after an error at once, as a barrier would wait for ranks that may never come."""
    if is_distributed():
        if error_type is None:
            dist.barrier()
        dist.destroy_process_group()


# ---- launching ------------------------------------------------------------------------------
def launch_requested(config):
    """Whether this (not yet distributed) process is asked to start several: RecBole's rule,
    ``nproc > 1`` or ``world_size > 0``."""
    return config["single_spec"] and ((config["nproc"] or 1) > 1 or (config["world_size"] or -1) > 0)


def worker_settings(config):
    """The settings every spawned process adds to the user's: RecBole's keys of a
    multi-process run. One node without ``--port``: a free port of this machine."""
    nproc = config["nproc"] or 1
    settings = {
        "nproc": nproc,
        "world_size": config["world_size"] if (config["world_size"] or -1) > 0 else nproc,
        "offset": config["group_offset"] or config["offset"] or 0,
        "ip": config["ip"] or "localhost",
        "port": config["port"],
    }
    if settings["port"] is None:
        settings["port"] = _free_port() if settings["world_size"] == nproc else 5678  # RecBole's default
    return settings


def _free_port():
    with socket.socket() as probe:
        probe.bind(("", 0))
        return probe.getsockname()[1]


def spawn(worker, nproc, args, threads_per_process=None):
    """Run ``worker(local_rank, *args, outcome)`` in ``nproc`` fresh processes, wait for them,
    and return what they put in ``outcome``: ``("ok", value)`` from the one that reports, or
    ``("error", message)`` from one that stopped on bad input with a non-zero exit code.

    A process that fails makes torch stop the others, and the parent's death stops them too
    (torch's ``spawn``). ``threads_per_process`` sets ``OMP_NUM_THREADS`` for the children
    when the user has not (as torchrun does), so that N processes do not each take every core.
    """
    outcome = torch.multiprocessing.get_context("spawn").SimpleQueue()
    set_threads = bool(threads_per_process) and "OMP_NUM_THREADS" not in os.environ
    if set_threads:
        os.environ["OMP_NUM_THREADS"] = str(threads_per_process)
    try:
        torch.multiprocessing.spawn(worker, args=(*args, outcome), nprocs=nproc, join=True)
    except torch.multiprocessing.ProcessExitedException:
        if outcome.empty():
            raise
    finally:
        if set_threads:
            del os.environ["OMP_NUM_THREADS"]
    return outcome.get()


def _launched_by_torchrun():
    return all(name in os.environ for name in TORCHRUN_VARIABLES)


def torchrun_settings():
    """RecBole's multi-process keys from the variables ``torchrun`` sets; ``{}`` otherwise."""
    if not _launched_by_torchrun():
        return {}
    local_rank, global_rank = int(os.environ["LOCAL_RANK"]), int(os.environ["RANK"])
    return {
        "local_rank": local_rank, "offset": global_rank - local_rank, "world_size": int(os.environ["WORLD_SIZE"]),
        "nproc": int(os.environ["LOCAL_WORLD_SIZE"]), "ip": os.environ["MASTER_ADDR"],
        "port": int(os.environ["MASTER_PORT"]),
    }


# ---- one process of a multi-process run ---------------------------------------------------
def backend_for(device):
    """``nccl`` for CUDA devices, ``gloo`` for the CPU."""
    return "nccl" if device.type == "cuda" else "gloo"


def init_process(settings):
    """Device and process group of one process, from RecBole's keys in ``settings`` (a
    ``Config``'s final dict, updated in place as RecBole's ``_init_device`` does): the device
    is chosen as in one process (``gpu_id`` and CUDA available: GPU ``local_rank``, else the
    CPU), the backend follows it. Ranks other than 0 log errors only."""
    gpu_id = settings["gpu_id"]
    gpu_id = ",".join(map(str, gpu_id)) if isinstance(gpu_id, tuple) else str(gpu_id)
    settings["gpu_id"] = gpu_id
    os.environ["CUDA_VISIBLE_DEVICES"] = gpu_id
    local_rank = settings["local_rank"]
    global_rank = local_rank + (settings["offset"] or 0)
    if gpu_id and torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    # torchrun's agent already serves the rendezvous store at MASTER_ADDR:MASTER_PORT
    init_method = "env://" if _launched_by_torchrun() else f"tcp://{settings['ip']}:{settings['port']}"
    dist.init_process_group(backend_for(device), init_method=init_method, rank=global_rank,
                            world_size=settings["world_size"])
    settings.update(device=device, single_spec=False)
    if global_rank != 0:
        settings.update(state="error", show_progress=False, verbose=False)


def data_parallel(module, device_ids=None, **kwargs):
    """RecBole's trainer wraps its model with this instead of ``DistributedDataParallel``:
    ``device_ids`` only for a CUDA module (torch refuses them for a CPU one), and no per-step
    buffer broadcast for a model whose buffers stay identical on every rank
    (``sync_buffers_each_step = False``; buffers are still synced once, here)."""
    on_gpu = any(parameter.is_cuda for parameter in module.parameters())
    if not getattr(module, "sync_buffers_each_step", True):
        kwargs["forward_sync_buffers"] = False  # torch >= 2.13; buffers are still synced at init
    return DistributedDataParallel(module, device_ids=device_ids if on_gpu else None, **kwargs)


# ---- gathering across ranks ---------------------------------------------------------------
def _padded_to(tensor, rows):
    """``tensor`` with zero rows appended up to ``rows`` (all_gather needs one shape on every rank)."""
    if rows == tensor.size(0):
        return tensor
    return torch.cat([tensor, tensor.new_zeros(rows - tensor.size(0), *tensor.shape[1:])])


def _row_counts(tensor):
    count = torch.tensor([tensor.size(0)], device=tensor.device)
    counts = [torch.empty_like(count) for _ in range(world_size())]
    dist.all_gather(counts, count)
    return [int(c) for c in counts]


@torch.no_grad()
def concat_all_gather(tensor):
    """MoCo's ``concat_all_gather``: ``tensor`` [n_r, ...] of every rank concatenated in rank
    order, on every rank, without gradient; ranks may hold different ``n_r``."""
    if not is_distributed():
        return tensor
    counts = _row_counts(tensor)
    padded = _padded_to(tensor.contiguous(), max(counts))
    gathered = [torch.empty_like(padded) for _ in counts]
    dist.all_gather(gathered, padded)
    return torch.cat([rows[:count] for rows, count in zip(gathered, counts)])


class _GatherWithGradient(torch.autograd.Function):
    """All ranks' equally shaped tensors stacked [W, ...]; backward returns to each rank the
    gradient of every rank's loss with respect to its own tensor (summed over ranks), so that
    DDP's average over ranks is the gradient of the mean loss over the global batch."""

    @staticmethod
    def forward(ctx, tensor):
        gathered = [torch.empty_like(tensor) for _ in range(world_size())]
        dist.all_gather(gathered, tensor.contiguous())
        return torch.stack(gathered)

    @staticmethod
    def backward(ctx, gradient):
        gradient = gradient.contiguous()
        dist.all_reduce(gradient)
        return gradient[rank()]


def gather_batch_candidates(candidate_ids, candidates):
    """In-batch candidates of the global batch: the sorted distinct ``candidate_ids`` of every
    rank and their vectors, each taken from the first rank that encoded it (with gradient)."""
    if not is_distributed():
        return candidate_ids, candidates
    counts = _row_counts(candidate_ids)
    ids = concat_all_gather(candidate_ids)
    stacked = _GatherWithGradient.apply(_padded_to(candidates, max(counts)))
    vectors = torch.cat([rows[:count] for rows, count in zip(stacked, counts)])
    distinct_ids, inverse = torch.unique(ids, return_inverse=True)
    positions = torch.arange(ids.numel(), device=ids.device)
    first = torch.full_like(distinct_ids, ids.numel()).scatter_reduce_(0, inverse, positions, reduce="amin")
    return distinct_ids, vectors[first]


# ---- evaluation -------------------------------------------------------------------------
class GatheringCollector(Collector):
    """RecBole's collector, whose collected rows are those of every rank, in the order of one
    process, without the samples DistributedSampler repeats to give every rank as many.

    The (unshuffled) sampler gives rank r the samples r, r + W, r + 2W, ... of a list padded to
    a multiple of W, so stacking the ranks' rows [W, n] and reading them column by column
    restores the list. Used where each sample is one row (ranking evaluation); otherwise
    ``gathered`` is False and the trainer reduces as RecBole does.
    """

    sampler = None
    gathered = False

    def get_data_struct(self):
        struct = super().get_data_struct()
        keys = [key for key in ROW_KEYS if key in struct]
        local_rows = {struct[key].size(0) for key in keys}
        one_row_per_sample = bool(keys) and self.sampler is not None and local_rows == {self.sampler.num_samples}
        self.gathered = all(all_gather_objects(one_row_per_sample))
        if self.gathered:
            for key in keys:
                rows = struct[key].to(self.device)
                gathered = [torch.empty_like(rows) for _ in range(world_size())]
                dist.all_gather(gathered, rows)
                in_order = torch.stack(gathered, dim=1).flatten(0, 1)
                struct[key] = in_order[:len(self.sampler.dataset)].cpu()
        return struct


class ExactEvaluationMixin:
    """Put in front of a RecBole trainer class in a multi-process run: every rank evaluates
    its share of the users, then all rows are scored at once (:class:`GatheringCollector`)."""

    def __init__(self, config, model):
        super().__init__(config, model)
        self.eval_collector = GatheringCollector(config)

    def evaluate(self, eval_data, *args, **kwargs):
        if eval_data:
            self.eval_collector.sampler = eval_data.sampler
        return super().evaluate(eval_data, *args, **kwargs)

    def _map_reduce(self, result, num_sample):
        if self.eval_collector.gathered:
            return result
        return super()._map_reduce(result, num_sample)


def exact_evaluation(trainer_class):
    """``trainer_class`` with :class:`ExactEvaluationMixin` in front of it."""
    return type(trainer_class.__name__, (ExactEvaluationMixin, trainer_class), {})
