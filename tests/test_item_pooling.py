"""``item_pooling: attention``: learned pooling of the PLM's token states (text_encoder.AttentionPooling)."""
import math

import torch
from test_model import build, first_batch

from adrec_recbole.text_encoder import AttentionPooling, masked_mean


def test_zero_queries_give_the_masked_mean_and_a_query_weights_tokens_by_softmax():
    hidden = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]],
                           [[2.0, 0.0], [0.0, 0.0], [0.0, 0.0]]])
    mask = torch.tensor([[True, True, False], [True, False, False]])
    pooling = AttentionPooling(hidden_size=2, heads=2)
    assert torch.allclose(pooling(hidden, mask), masked_mean(hidden, mask))  # the padding [5, 5] is ignored
    with torch.no_grad():
        pooling.queries.copy_(torch.tensor([[math.sqrt(2) * math.log(3), 0.0], [0.0, 0.0]]))
    # head 1 scores the tokens ln 3 and 0 -> weights 3/4, 1/4; head 2 weights 1/2, 1/2; mean 5/8, 3/8
    assert torch.allclose(pooling(hidden, mask)[0], torch.tensor([5 / 8, 3 / 8]))
    assert torch.allclose(pooling(hidden, mask)[1], torch.tensor([2.0, 0.0]))  # one real token: itself


def test_frozen_attention_pooling_starts_at_the_mean_vectors_and_learns_its_queries(quick_settings):
    _, mean_model, _, _, _ = build(quick_settings, plm_layer=-1)  # attention pooling reads one layer
    _, model, train_data, _, _ = build(quick_settings, plm_layer=-1, item_pooling="attention", pooling_heads=2)
    assert not hasattr(model, "plm_item_vectors") and model.plm_token_states.dtype == torch.float16
    ids = torch.arange(model.n_items)
    pooled = model.online.pooling(*model._item_inputs(ids))
    # cached float16 token states pooled by zero queries = the cached float32 mean vectors
    assert torch.allclose(pooled, mean_model.plm_item_vectors, atol=2e-3)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    batch = first_batch(train_data)
    losses = []
    for _ in range(5):
        optimizer.zero_grad()
        loss = sum(model.calculate_loss(batch))
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert model.online.pooling.queries.abs().sum() > 0 and losses[-1] < losses[0]
    model.eval()
    scores = model.full_sort_predict(batch)
    assert scores.shape == (len(batch), model.n_items)


def test_a_new_items_text_is_pooled_as_the_catalogue_is(quick_settings):
    _, model, train_data, _, _ = build(quick_settings, plm_layer=-1, item_pooling="attention", pooling_heads=2)
    with torch.no_grad():
        model.online.pooling.queries.normal_()
    model.eval()
    texts = train_data.dataset.item_texts
    new = model.encode_item_texts([texts[3], texts[7]])
    assert torch.allclose(new, model.item_vectors()[[3, 7]], atol=1e-2)  # float16 cache vs float32 here
    assert not torch.allclose(new[0], new[1], atol=1e-2)
