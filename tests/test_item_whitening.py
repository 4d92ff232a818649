"""Options on the frozen item vectors: ``item_whitening`` (fixed ZCA whitening, text_encoder.Whitening)
and layer fusion (``plm_layer`` as a list)."""
import torch
from test_model import build, first_batch

from adrec_recbole.text_encoder import Whitening


def test_whitened_vectors_have_identity_covariance_and_shrinkage_damps_small_directions():
    generator = torch.Generator().manual_seed(0)
    # anisotropic data: variances 4, 1 and .01 along the axes of a rotation
    rotation, _ = torch.linalg.qr(torch.randn(3, 3, generator=generator, dtype=torch.float64))
    vectors = (torch.randn(2000, 3, generator=generator, dtype=torch.float64) * torch.tensor([2.0, 1.0, 0.1])) @ rotation.t() + 5.0
    exact = Whitening(vectors, shrinkage=0.0)(vectors.float()).double()
    assert torch.allclose(exact.mean(dim=0), torch.zeros(3, dtype=torch.float64), atol=1e-4)
    assert torch.allclose(exact.t() @ exact / 1999, torch.eye(3, dtype=torch.float64), atol=1e-3)
    # ZCA, not any whitening: the map is symmetric (it does not rotate the space)
    assert torch.allclose(Whitening(vectors, 0.0).matrix, Whitening(vectors, 0.0).matrix.t())
    shrunk = Whitening(vectors, shrinkage=0.5)(vectors.float()).double()
    eigenvalues = torch.linalg.eigvalsh(vectors.t() @ (vectors - vectors.mean(0)) / 1999)
    eps = 0.5 * eigenvalues.mean()
    # variance along each eigen-direction becomes lambda / (lambda + eps): the .01 one is damped most
    expected = torch.sort(eigenvalues / (eigenvalues + eps)).values
    assert torch.allclose(torch.linalg.eigvalsh(shrunk.t() @ shrunk / 1999), expected, atol=2e-3)


def test_frozen_whitening_is_fitted_on_the_real_items_and_new_texts_pass_through_it(quick_settings):
    _, model, train_data, _, _ = build(quick_settings, item_whitening=True, whitening_shrinkage=1e-3)
    whitened = model.online.whitening(model.plm_item_vectors[1:])
    assert torch.allclose(whitened.mean(dim=0), torch.zeros(whitened.size(1)), atol=1e-3)
    assert model.momentum_tower is None  # the default loss builds no momentum copy
    loss = sum(model.calculate_loss(first_batch(train_data)))
    loss.backward()
    assert model.online.adapter[0].weight.grad.abs().sum() > 0
    model.eval()
    texts = train_data.dataset.item_texts
    assert torch.allclose(model.encode_item_texts([texts[3]]), model.item_vectors()[[3]], atol=1e-4)


def test_layer_fusion_feeds_the_adapter_both_layers_and_new_texts_get_the_same_vectors(quick_settings):
    _, model, train_data, _, _ = build(quick_settings)  # the defaults fuse layers 1 and 6 (-1)
    experts = model.online.adapter[0].weight  # (experts, 2 x 384, hidden)
    assert model.plm_item_vectors.shape[1] == 2 * 384 and experts.shape[1] == 2 * 384
    loss = sum(model.calculate_loss(first_batch(train_data)))
    loss.backward()
    assert experts.grad[:, :384].abs().sum() > 0   # layer 1's half is read
    assert experts.grad[:, 384:].abs().sum() > 0   # and the last layer's
    model.eval()
    texts = train_data.dataset.item_texts
    assert torch.allclose(model.encode_item_texts([texts[3]]), model.item_vectors()[[3]], atol=1e-4)
