"""One ADRec training step, checked against the method (ADREC_SPEC sections 3-4): what each
loss term's query, positive and negatives are, the queues after the step, the work skipped for
inactive terms, mixed precision, key dropout, and the scoring cache."""
import copy

import pytest
import torch
import torch.nn.functional as F

import adrec_recbole.model as model_module
from adrec_recbole.momentum import momentum_update
from adrec_recbole.quick_start import run
from test_model import DETERMINISTIC, PAPER_TERMS, build, first_batch


def online_and_momentum_vectors(model, batch, momentum_tower):
    """(online sequences, online targets, momentum sequences, momentum targets), unit-norm,
    computed tower by tower over the whole catalogue, not through ``calculate_loss``."""
    item_seq, item_seq_len = model._recent_history(batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN])
    target = batch[model.POS_ITEM_ID]
    vectors = []
    with torch.no_grad():
        for tower in (model.online, momentum_tower):
            items = tower.encode_items(model.plm_item_vectors)
            sequences = tower.sequence_encoder(items[item_seq], item_seq_len)
            vectors += [F.normalize(sequences, dim=-1), F.normalize(items[target], dim=-1)]
    online_seq, online_item, momentum_seq, momentum_item = vectors
    return online_seq, online_item, momentum_seq, momentum_item


def recorder(monkeypatch, name):
    """Replace the loss ``name`` inside the model module by a copy that records its arguments."""
    calls = []
    original = getattr(model_module, name)

    def recording(*args):
        calls.append([arg.detach().clone() if torch.is_tensor(arg) else arg for arg in args])
        return original(*args)

    monkeypatch.setattr(model_module, name, recording)
    return calls


@pytest.fixture
def paper_step(quick_settings, monkeypatch):
    """One step with the paper's four terms; what the method says each term should see."""
    _, model, train_data, _, _ = build(quick_settings, **DETERMINISTIC, momentum=0.9, **PAPER_TERMS)
    torch.manual_seed(0)
    with torch.no_grad():  # make the online and momentum copies differ
        for parameter in model.online.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    batch = first_batch(train_data)
    expected_momentum = copy.deepcopy(model.momentum_tower)
    momentum_update(model.online, expected_momentum, 0.9)  # keys come from the updated copy
    expected = dict(zip(("online_seq", "online_item", "momentum_seq", "momentum_item"),
                        online_and_momentum_vectors(model, batch, expected_momentum)))
    pointer = model.item_queue.pointer.item()
    assert pointer == model.sequence_queue.pointer.item() == 0
    expected["item_queue_before"] = model.item_queue.vectors.clone()
    expected["sequence_queue_before"] = model.sequence_queue.vectors.clone()
    rows = torch.arange(len(batch))  # batch (32) < queue (50): written at rows 0..31
    expected["item_queue_after"] = expected["item_queue_before"].clone().index_copy(0, rows, expected["momentum_item"])
    expected["sequence_queue_after"] = expected["sequence_queue_before"].clone().index_copy(
        0, rows, expected["momentum_seq"])
    calls = recorder(monkeypatch, "arc_margin_contrastive_loss")
    losses = model.calculate_loss(batch)
    assert len(calls) == 4  # terms 1-4, in order
    return model, batch, calls, expected, losses


def assert_call(call, query, positive, negatives):
    got_query, got_positive, got_negatives = call[:3]
    assert torch.allclose(got_query, query, atol=1e-5)
    assert torch.allclose(got_positive, positive, atol=1e-5)
    assert torch.allclose(got_negatives, negatives, atol=1e-6)


def test_term1_sequence_to_next_item_against_the_item_queue(paper_step):
    _, _, calls, e, _ = paper_step
    assert_call(calls[0], e["online_seq"], e["momentum_item"], e["item_queue_before"])


def test_term2_item_to_sequence_against_the_sequence_queue(paper_step):
    _, _, calls, e, _ = paper_step
    assert_call(calls[1], e["online_item"], e["momentum_seq"], e["sequence_queue_before"])


def test_term3_sequence_to_own_momentum_copy_sees_this_batch_enqueued(paper_step):
    _, _, calls, e, _ = paper_step
    assert_call(calls[2], e["online_seq"], e["momentum_seq"], e["sequence_queue_after"])
    assert not torch.allclose(e["sequence_queue_after"], e["sequence_queue_before"])


def test_term4_item_to_own_momentum_copy_sees_this_batch_enqueued(paper_step):
    _, _, calls, e, _ = paper_step
    assert_call(calls[3], e["online_item"], e["momentum_item"], e["item_queue_after"])


def test_queues_after_a_step_hold_this_batch_momentum_keys(paper_step):
    model, batch, _, e, losses = paper_step
    assert torch.allclose(model.item_queue.vectors, e["item_queue_after"], atol=1e-6)
    assert torch.allclose(model.sequence_queue.vectors, e["sequence_queue_after"], atol=1e-6)
    assert model.item_queue.pointer.item() == model.sequence_queue.pointer.item() == len(batch)
    sum(losses).backward()  # terms 1-2 scored copies: the in-place enqueue leaves autograd valid


def test_default_term1_against_the_catalogue_builds_no_momentum_copy_and_no_queue(quick_settings, monkeypatch):
    _, model, train_data, _, _ = build(quick_settings, **DETERMINISTIC)  # the defaults' loss: 1/0/0/0, catalogue
    assert model.momentum_tower is None and model.item_queue is None and model.sequence_queue is None
    assert not [name for name in model.state_dict() if name.startswith(("momentum_tower", "item_queue", "sequence_queue"))]
    batch = first_batch(train_data)
    online_seq, _, _, _ = online_and_momentum_vectors(model, batch, model.online)
    catalogue_calls = recorder(monkeypatch, "arc_margin_catalogue_loss")
    queue_calls = recorder(monkeypatch, "arc_margin_contrastive_loss")
    losses = model.calculate_loss(batch)
    assert [loss.item() for loss in losses[1:]] == [0.0, 0.0, 0.0] and not queue_calls
    query, candidates, target = catalogue_calls[0][:3]
    with torch.no_grad():
        all_items = F.normalize(model.online.encode_items(model.plm_item_vectors), dim=-1)
    assert torch.allclose(query, online_seq, atol=1e-5)
    assert torch.allclose(candidates, all_items, atol=1e-6) and len(candidates) == model.n_items
    assert torch.equal(target, batch[model.POS_ITEM_ID])


def test_batch_negatives_are_the_distinct_items_of_the_batch(quick_settings, monkeypatch):
    _, model, train_data, _, _ = build(quick_settings, **DETERMINISTIC, seq_item_negatives="batch")
    batch = first_batch(train_data)
    calls = recorder(monkeypatch, "arc_margin_catalogue_loss")
    model.calculate_loss(batch)
    _, candidates, target_rows, _, _, padding_row = calls[0]
    item_seq, _ = model._recent_history(batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN])
    batch_items = torch.unique(torch.cat([item_seq.flatten(), batch[model.POS_ITEM_ID]]))
    with torch.no_grad():
        expected = F.normalize(model.online.encode_items(model.plm_item_vectors[batch_items]), dim=-1)
    assert torch.allclose(candidates, expected, atol=1e-6)
    assert torch.equal(batch_items[target_rows], batch[model.POS_ITEM_ID])
    assert padding_row == 0 and batch_items[0] == 0  # padded histories: the padding item is excluded


def test_term1_with_queue_negatives_alone_makes_item_keys_only(quick_settings):
    _, model, train_data, _, _ = build(quick_settings, loss_weights=[1.0, 0.0, 0.0, 0.0], seq_item_negatives="queue")
    assert model.item_queue is not None and model.sequence_queue is None
    sequence_encoder_calls = []
    model.momentum_tower.sequence_encoder.register_forward_hook(lambda *_: sequence_encoder_calls.append(1))
    batch = first_batch(train_data)
    model.calculate_loss(batch)
    assert not sequence_encoder_calls
    assert model.item_queue.pointer.item() == len(batch)


@pytest.mark.parametrize("key_dropout", [False, True])
def test_key_dropout_decides_whether_momentum_keys_see_dropout(quick_settings, key_dropout):
    _, model, train_data, _, _ = build(quick_settings, hidden_dropout_prob=0.5, key_dropout=key_dropout, **PAPER_TERMS)
    model.train()
    assert model.online.training and model.momentum_tower.training == key_dropout
    batch = first_batch(train_data)
    item_seq, item_seq_len = model._recent_history(batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN])
    with torch.no_grad():
        keys = [model._encode_batch(model.momentum_tower, item_seq, item_seq_len, batch[model.POS_ITEM_ID])[0]
                for _ in range(2)]
    assert torch.equal(keys[0], keys[1]) != key_dropout


@pytest.mark.parametrize("adapter", ["linear", "experts"])
@pytest.mark.parametrize("negatives", ["catalogue", "batch", "queue"])
def test_a_training_step_under_cpu_autocast(quick_settings, negatives, adapter):
    adapter_settings = DETERMINISTIC if adapter == "linear" else {"hidden_dropout_prob": 0.0}  # experts: noisy gate
    settings = dict(quick_settings, **adapter_settings, loss_weights=[0.3, 0.3, 0.2, 0.2], seq_item_negatives=negatives)
    _, full_precision, train_data, _, _ = build(settings)
    _, mixed, _, _, _ = build(settings)
    batch = first_batch(train_data)
    torch.manual_seed(0)
    reference = [loss.item() for loss in full_precision.calculate_loss(batch)]
    torch.manual_seed(0)  # the experts' gate noise and dropout: the same draws as the float32 step
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = mixed.calculate_loss(batch)
    assert all(loss.dtype == torch.float32 and torch.isfinite(loss) for loss in losses)
    assert [loss.item() for loss in losses] == pytest.approx(reference, rel=0.05)
    sum(losses).backward()
    grads = [p.grad for p in mixed.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(grad).all() for grad in grads)
    assert mixed.online.adapter[0].weight.grad.abs().sum() > 0


def test_recbole_trainer_with_enable_amp_trains_on_cpu(quick_settings):
    result = run("ADRec", "Tiny", config_dict={**quick_settings, "enable_amp": True, "epochs": 1, **PAPER_TERMS})
    assert result["epochs_run"] == 1 and 0 < result["best_valid_result"]["ndcg@10"] <= 1


def full_sort_batch(valid_data):
    interaction, _, _, _ = next(iter(valid_data))
    return interaction


def test_scoring_cache_is_dropped_on_load_state_dict(quick_settings):
    _, model, _, valid_data, _ = build(quick_settings)
    _, other, _, _, _ = build(quick_settings, seed=7)
    model.eval(), other.eval()
    interaction = full_sort_batch(valid_data)
    with torch.no_grad():
        before = model.full_sort_predict(interaction)
        model.load_state_dict(other.state_dict())
        after, expected = model.full_sort_predict(interaction), other.full_sort_predict(interaction)
    assert not torch.allclose(before, expected) and torch.allclose(after, expected)


def test_scoring_cache_is_dropped_on_device_or_dtype_moves(quick_settings):
    _, model, _, valid_data, _ = build(quick_settings)
    model.eval()
    interaction = full_sort_batch(valid_data)
    with torch.no_grad():
        model.full_sort_predict(interaction)  # cached in float32
        model.to(torch.float64)  # a stale cache would now mix float32 items with float64 sequences
        scores = model.full_sort_predict(interaction)
    assert scores.dtype == torch.float64
