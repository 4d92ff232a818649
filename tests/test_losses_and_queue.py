"""Arc-margin losses against hand-computed values; queue ring buffer; momentum update."""
import math

import pytest
import torch

from adrec_recbole.losses import arc_margin_catalogue_loss, arc_margin_contrastive_loss
from adrec_recbole.momentum import VectorQueue, momentum_update


def unit(angle):
    return [math.cos(angle), math.sin(angle)]


def test_arc_margin_contrastive_loss_matches_hand_computation():
    s, m = 18.0, 0.1
    query = torch.tensor([[1.0, 0.0]])
    positive = torch.tensor([unit(0.9)])
    negatives = torch.tensor([unit(0.2), unit(1.5)])
    positive_logit = s * math.cos(0.9 + m)  # cos(acos(cos 0.9) + m)
    negative_logits = [s * math.cos(0.2), s * math.cos(1.5)]
    expected = -math.log(math.exp(positive_logit) / (math.exp(positive_logit) + sum(map(math.exp, negative_logits))))
    loss = arc_margin_contrastive_loss(query, positive, negatives, s, m)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_margin_makes_the_loss_larger():
    query = torch.tensor([[1.0, 0.0]])
    positive = torch.tensor([unit(0.3)])
    negatives = torch.tensor([unit(1.0)])
    without = arc_margin_contrastive_loss(query, positive, negatives, 10.0, 0.0)
    with_margin = arc_margin_contrastive_loss(query, positive, negatives, 10.0, 0.2)
    expected_without = -math.log(1 / (1 + math.exp(10 * math.cos(1.0) - 10 * math.cos(0.3))))
    assert without.item() == pytest.approx(expected_without, rel=1e-5)
    assert with_margin.item() > without.item()


def test_catalogue_loss_ignores_padding_row_and_applies_margin_to_target():
    s, m = 18.0, 0.1
    query = torch.tensor([unit(0.0), unit(1.2)])
    candidates = torch.tensor([unit(0.0), unit(0.5), unit(1.0)])  # row 0 = padding item
    target = torch.tensor([1, 2])
    p0 = s * math.cos(0.5 + m)
    loss_0 = -math.log(math.exp(p0) / (math.exp(p0) + math.exp(s * math.cos(1.0))))
    p1 = s * math.cos(0.2 + m)
    loss_1 = -math.log(math.exp(p1) / (math.exp(p1) + math.exp(s * math.cos(0.7))))
    loss = arc_margin_catalogue_loss(query, candidates, target, s, m)
    assert loss.item() == pytest.approx((loss_0 + loss_1) / 2, rel=1e-5)


def test_acos_clamp_keeps_gradients_finite_at_identical_vectors():
    query = torch.tensor([[1.0, 0.0]], requires_grad=True)
    loss = arc_margin_contrastive_loss(query, torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]]), 18.0, 0.1)
    loss.backward()
    assert torch.isfinite(query.grad).all()


def test_queue_starts_with_unit_vectors_and_wraps_around_oldest_first():
    queue = VectorQueue(size=5, dim=3)
    assert torch.allclose(queue.vectors.norm(dim=1), torch.ones(5))
    first = torch.arange(12.0).view(4, 3)
    queue.enqueue(first)  # rows 0..3
    assert queue.pointer.item() == 4
    second = 100 + torch.arange(9.0).view(3, 3)
    queue.enqueue(second)  # row 4, then wraps to rows 0, 1
    assert queue.pointer.item() == 2
    assert torch.equal(queue.vectors[4], second[0])
    assert torch.equal(queue.vectors[0], second[1])
    assert torch.equal(queue.vectors[1], second[2])
    assert torch.equal(queue.vectors[2], first[2])  # not yet overwritten
    assert torch.equal(queue.vectors[3], first[3])


def test_queue_keeps_newest_when_batch_exceeds_size():
    queue = VectorQueue(size=3, dim=1)
    queue.enqueue(torch.arange(7.0).view(7, 1))
    assert sorted(queue.vectors.flatten().tolist()) == [4.0, 5.0, 6.0]


def test_snapshot_is_not_changed_by_later_enqueue():
    queue = VectorQueue(size=4, dim=2)
    snapshot = queue.snapshot()
    queue.enqueue(torch.ones(2, 2))
    assert not torch.equal(snapshot, queue.vectors)


def test_momentum_update_is_exponential_moving_average():
    online, copy = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    with torch.no_grad():
        online.weight.fill_(1.0), online.bias.fill_(2.0)
        copy.weight.fill_(0.0), copy.bias.fill_(-1.0)
    momentum_update(online, copy, 0.9)
    assert torch.allclose(copy.weight, torch.full((2, 2), 0.1))
    assert torch.allclose(copy.bias, torch.full((2,), 0.9 * -1.0 + 0.1 * 2.0))
    momentum_update(online, copy, 0.9)
    assert torch.allclose(copy.weight, torch.full((2, 2), 0.9 * 0.1 + 0.1))
    assert torch.allclose(online.weight, torch.ones(2, 2))  # the online side never moves
