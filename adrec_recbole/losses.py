"""Arc-margin contrastive losses of ADRec (ADREC_SPEC section 3).

For a unit query q, its unit positive key k and unit negatives n_j:

    L = -log  e^{s·cos(θ+m)} / ( e^{s·cos(θ+m)} + Σ_j e^{s·q·n_j} ),   θ = acos(q·k)

an additive angular margin m (ArcFace) at scale s; the authors use s = 18, m = 0.1.
acos is taken of q·k clamped to [-1 + ε, 1 - ε] so that its gradient stays finite
(the authors do not clamp).

Under mixed precision (``enable_amp``) the losses are still computed in float32: at s = 18 a
half-precision cosine is off by up to ~0.1 in the logit, acos/cos of the margin lose the small
angles that matter most, and the margin logit must have the logits' dtype to be scattered in.
"""
import functools

import torch
import torch.nn.functional as F

ACOS_EPS = 1e-6


def in_float32(loss_function):
    """Run ``loss_function`` with autocast off and its tensor arguments cast to float32."""
    @functools.wraps(loss_function)
    def wrapper(*args, **kwargs):
        device_type = next(arg for arg in args if torch.is_tensor(arg)).device.type
        with torch.autocast(device_type, enabled=False):
            return loss_function(*(arg.float() if torch.is_tensor(arg) and arg.is_floating_point() else arg
                                   for arg in args), **kwargs)
    return wrapper


def arc_margin_positive_logit(cos_positive, scale, margin):
    """``s·cos(acos(cos_positive) + m)``, with acos's argument clamped."""
    theta = torch.acos(cos_positive.clamp(-1.0 + ACOS_EPS, 1.0 - ACOS_EPS))
    return scale * torch.cos(theta + margin)


@in_float32
def arc_margin_contrastive_loss(query, positive, negatives, scale, margin):
    """Mean arc-margin InfoNCE of unit ``query`` [B, d] against ``positive`` [B, d] and a
    shared bank of unit ``negatives`` [N, d] (a queue: the authors' setting)."""
    positive_logit = arc_margin_positive_logit((query * positive).sum(dim=-1), scale, margin)
    negative_logits = scale * query @ negatives.t()
    logits = torch.cat([positive_logit.unsqueeze(1), negative_logits], dim=1)
    return F.cross_entropy(logits, torch.zeros(query.size(0), dtype=torch.long, device=query.device))


@in_float32
def arc_margin_catalogue_loss(query, candidates, target, scale, margin, ignore_index=0):
    """Arc-margin softmax of unit ``query`` [B, d] over unit ``candidates`` [C, d] whose row
    ``target`` [B] is the positive; every other row is a negative, except ``ignore_index``
    (RecBole's padding item). With all items as candidates this is a full softmax over the
    catalogue, the ranking the evaluator measures."""
    logits = scale * query @ candidates.t()
    target_cos = (query * candidates[target]).sum(dim=-1)
    logits = logits.scatter(1, target.unsqueeze(1), arc_margin_positive_logit(target_cos, scale, margin).unsqueeze(1))
    if ignore_index is not None:
        logits[:, ignore_index] = float("-inf")
    return F.cross_entropy(logits, target)
