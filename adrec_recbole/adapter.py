"""The item adapter: PLM item vectors [n, plm size] -> the model's width [n, hidden_size].

ADRec's adapter (this project's; the paper has none, ``adapter: false``) is a Linear layer and a
LayerNorm. ``adapter_experts: k > 1`` puts UniSRec's mixture-of-experts adaptor (Hou et al., KDD
2022, section 2.2; RUCAIBox/UniSRec ``MoEAdaptorLayer``) in the Linear layer's place: k
parametric-whitening experts, and a gate that mixes them per item. The LayerNorm follows either.
"""
import torch
import torch.nn.functional as F
from torch import nn


class MixtureOfExpertsAdapter(nn.Module):
    """``x -> sum_i g_i(x) (dropout(x) - b_i) W_i`` (UniSRec eq. 3-4): expert i whitens with a
    learned bias b_i [d_in] and projection W_i [d_in, d_out]; the gate is
    ``g(x) = softmax(x W_g + eps (softplus(x W_n) + .01))``, with Gaussian ``eps`` in training only
    (noisy gating) and none at evaluation. As in UniSRec: W_i ~ N(0, .02), b_i, W_g, W_n zero, so
    the experts start mixed evenly."""

    def __init__(self, input_size, output_size, experts, dropout):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.bias = nn.Parameter(torch.zeros(experts, input_size))                         # b_i
        self.weight = nn.Parameter(torch.randn(experts, input_size, output_size) * 0.02)  # W_i
        self.gate = nn.Parameter(torch.zeros(input_size, experts))                        # W_g
        self.gate_noise = nn.Parameter(torch.zeros(input_size, experts))                  # W_n

    def gates(self, vectors):
        """[n, d_in] -> [n, experts], rows summing to 1, in ``vectors``' dtype. The gate is computed
        in at least float32, also under autocast, so that an AMP step draws the same noise as a
        float32 step of the same seed."""
        dtype = torch.promote_types(vectors.dtype, torch.float32)
        logits = (vectors @ self.gate).to(dtype)
        if self.training:
            noise_scale = F.softplus(vectors @ self.gate_noise).to(dtype) + 1e-2
            logits = logits + torch.randn(logits.shape, dtype=dtype, device=logits.device) * noise_scale
        return logits.softmax(dim=-1).to(vectors.dtype)

    def forward(self, vectors):
        gates = self.gates(vectors)                                              # [n, k]
        whitened = self.dropout(vectors).unsqueeze(0) - self.bias.unsqueeze(1)   # [k, n, d_in]
        experts = torch.bmm(whitened, self.weight)                               # [k, n, d_out]
        return torch.einsum("nk,knd->nd", gates, experts)                        # [n, d_out]


def build_adapter(input_size, hidden_size, experts, dropout, layer_norm_eps):
    """``Linear`` (``experts`` 1) or :class:`MixtureOfExpertsAdapter`, then ``LayerNorm``."""
    projection = (
        nn.Linear(input_size, hidden_size) if experts == 1
        else MixtureOfExpertsAdapter(input_size, hidden_size, experts, dropout)
    )
    return nn.Sequential(projection, nn.LayerNorm(hidden_size, eps=layer_norm_eps))
