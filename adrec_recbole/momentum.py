"""ADRec's dual momentum queue (ADREC_SPEC section 4).

A momentum (key) encoder follows the online encoder as ``θ_k <- M·θ_k + (1 - M)·θ_q`` and is
never trained by gradient; the keys it produces fill two FIFO queues of L2-normalised
vectors, one of items and one of sequences, that serve as negatives of the contrastive terms.
"""
import torch
import torch.nn.functional as F
from torch import nn


@torch.no_grad()
def momentum_update(online, momentum_copy, momentum):
    """``θ_k <- M·θ_k + (1 - M)·θ_q`` for every parameter pair of two same-shaped modules."""
    online_params = [p.detach() for p in online.parameters()]
    copy_params = list(momentum_copy.parameters())
    torch._foreach_mul_(copy_params, momentum)
    torch._foreach_add_(copy_params, online_params, alpha=1.0 - momentum)


class VectorQueue(nn.Module):
    """A ring buffer of ``size`` unit vectors; the oldest are overwritten first.

    Starts filled with random unit vectors, as the authors' code. Both the vectors and the
    write position are buffers, so they are saved in checkpoints.
    """

    def __init__(self, size, dim):
        super().__init__()
        self.register_buffer("vectors", F.normalize(torch.randn(size, dim), dim=-1))
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))

    @property
    def size(self):
        return self.vectors.size(0)

    def snapshot(self):
        """A copy to score against: the buffer itself changes in place on the next enqueue."""
        return self.vectors.clone()

    @torch.no_grad()
    def enqueue(self, keys):
        """Write ``keys`` [n, dim] at the pointer, wrapping around; keep the newest ``size``."""
        keys = keys.detach()[-self.size:]
        positions = (self.pointer + torch.arange(keys.size(0), device=keys.device)) % self.size
        self.vectors[positions] = keys.to(self.vectors.dtype)
        self.pointer.copy_((self.pointer + keys.size(0)) % self.size)
