"""The item adapter (adrec_recbole/adapter.py): the default Linear + LayerNorm, and UniSRec's
mixture of parametric-whitening experts (``adapter_experts > 1``)."""
import torch
import torch.nn.functional as F
from test_model import build, first_batch

from adrec_recbole.adapter import MixtureOfExpertsAdapter


def small_mixture():
    """Two experts over 3 -> 2 dimensions with hand-set parameters."""
    torch.manual_seed(0)
    mixture = MixtureOfExpertsAdapter(3, 2, experts=2, dropout=0.0)
    with torch.no_grad():
        mixture.bias.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0]]))
        mixture.weight.copy_(torch.tensor([[[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]],
                                           [[0.0, 2.0], [0.0, 0.0], [1.0, 0.0]]]))
        mixture.gate.copy_(torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]]))
    return mixture


def test_each_item_mixes_its_whitened_expert_projections_by_its_gate():
    mixture = small_mixture().eval()
    x = torch.tensor([[2.0, 3.0, 0.0], [0.0, 1.0, 1.0]])
    # item 1: gate logits (2, 0); expert 1: (x - (1,0,0)) W_1 = (1, 3); expert 2: (x - (0,0,-1)) W_2 = (1, 4)
    # item 2: gate logits (0, 1); expert 1: (-1, 1);                     expert 2: (2, 0)
    g1, g2 = F.softmax(torch.tensor([2.0, 0.0]), 0), F.softmax(torch.tensor([0.0, 1.0]), 0)
    expected = torch.stack([g1[0] * torch.tensor([1.0, 3.0]) + g1[1] * torch.tensor([1.0, 4.0]),
                            g2[0] * torch.tensor([-1.0, 1.0]) + g2[1] * torch.tensor([2.0, 0.0])])
    assert torch.allclose(mixture(x), expected, atol=1e-6)
    assert torch.allclose(mixture.gates(x), torch.stack([g1, g2]))


def test_the_gate_is_noisy_in_training_only_and_starts_even():
    mixture = small_mixture()
    x = torch.tensor([[2.0, 3.0, 0.0], [0.0, 1.0, 1.0]])
    mixture.eval()
    assert torch.equal(mixture.gates(x), mixture.gates(x))  # no noise at evaluation
    mixture.train()
    noisy = mixture.gates(x)
    assert not torch.allclose(noisy, mixture.eval().gates(x), atol=1e-3)
    assert torch.allclose(noisy.sum(dim=1), torch.ones(2))
    fresh = MixtureOfExpertsAdapter(3, 2, experts=4, dropout=0.0).eval()  # zero gate weights: even mix
    assert torch.allclose(fresh.gates(x), torch.full((2, 4), 0.25))


def test_adrec_trains_the_experts_and_the_gate_and_one_expert_is_the_linear_adapter(quick_settings):
    _, default, _, _, _ = build(quick_settings)  # the defaults: 8 experts on the two fused layers
    assert isinstance(default.online.adapter[0], MixtureOfExpertsAdapter)
    assert default.online.adapter[0].weight.shape == (8, 2 * 384, 32)
    _, linear, _, _, _ = build(quick_settings, adapter_experts=1, adapter_dropout=0.0, plm_layer=-1)
    assert isinstance(linear.online.adapter[0], torch.nn.Linear)  # its checkpoints keep their keys
    _, model, train_data, _, _ = build(quick_settings, plm_layer=-1, adapter_experts=3, adapter_dropout=0.2)
    mixture = model.online.adapter[0]
    assert isinstance(mixture, MixtureOfExpertsAdapter) and mixture.weight.shape == (3, 384, 32)
    sum(model.calculate_loss(first_batch(train_data))).backward()
    for parameter in (mixture.weight, mixture.bias, mixture.gate, mixture.gate_noise):
        assert parameter.grad.abs().sum() > 0
    model.eval()
    assert torch.equal(model.item_vectors(), model.item_vectors())  # scoring is deterministic
