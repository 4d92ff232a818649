"""ADRec on a tiny dataset: history window, the four terms, momentum and queues during
training, enqueue order, one item encoding per evaluation pass, checkpoint round-trip,
finetune mode."""
import pytest
import torch
from recbole.data import data_preparation
from recbole.utils import get_trainer, init_seed

from adrec_recbole.dataset import ADRecDataset
from adrec_recbole.model import ADRec
from adrec_recbole.quick_start import RunError, build_config


def build(settings, **overrides):
    config = build_config("ADRec", "Tiny", config_dict={**settings, **overrides})
    init_seed(config["seed"], config["reproducibility"])
    dataset = ADRecDataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    model = ADRec(config, train_data.dataset).to(config["device"])
    return config, model, train_data, valid_data, test_data


def first_batch(train_data):
    return next(iter(train_data))


PAPER_TERMS = {"loss_weights": [0.3, 0.3, 0.2, 0.2], "seq_item_negatives": "queue"}
#: a training forward without randomness, to recompute by hand: no dropout, and one Linear adapter
#: in place of the default mixture of experts (its gate adds noise in training mode)
DETERMINISTIC = {"hidden_dropout_prob": 0.0, "adapter_experts": 1, "adapter_dropout": 0.0}


def test_dataset_reads_item_texts_in_internal_id_order(quick_settings):
    config, model, train_data, _, _ = build(quick_settings)
    dataset = train_data.dataset
    assert dataset.item_texts[0] == "" and dataset.missing_text_items == 0
    for internal_id, token in enumerate(dataset.field2id_token["item_id"][1:], start=1):
        family, position = divmod(int(token), 4)
        assert dataset.item_texts[internal_id] == list(__import__("conftest").FAMILIES.values())[family][position]


def test_recent_history_keeps_the_last_items_left_aligned(quick_settings):
    _, model, _, _, _ = build(quick_settings, MAX_ITEM_LIST_LENGTH=3)
    item_seq = torch.tensor([[5, 6, 7, 8, 9, 0], [1, 2, 0, 0, 0, 0], [4, 0, 0, 0, 0, 0]])
    recent, lengths = model._recent_history(item_seq, torch.tensor([5, 2, 1]))
    assert recent.tolist() == [[7, 8, 9], [1, 2, 0], [4, 0, 0]]
    assert lengths.tolist() == [3, 2, 1]


def test_training_step_moves_momentum_copy_and_fills_both_queues(quick_settings):
    _, model, train_data, _, _ = build(quick_settings, momentum=0.9, loss_weights=[0.3, 0.3, 0.2, 0.2])
    batch = first_batch(train_data)
    online_before = [p.detach().clone() for p in model.online.parameters()]
    momentum_before = [p.detach().clone() for p in model.momentum_tower.parameters()]
    with torch.no_grad():
        for p in model.online.parameters():
            p.add_(0.05)  # make online and momentum copies differ
    losses = model.calculate_loss(batch)
    assert len(losses) == 4 and all(torch.isfinite(loss) and loss > 0 for loss in losses)
    for before, online, after in zip(momentum_before, model.online.parameters(), model.momentum_tower.parameters()):
        assert torch.allclose(after, 0.9 * before + 0.1 * online.detach(), atol=1e-6)
    assert not any(p.requires_grad for p in model.momentum_tower.parameters())
    batch_size = len(batch)
    assert model.item_queue.pointer.item() == batch_size % model.item_queue.size
    assert model.sequence_queue.pointer.item() == batch_size % model.sequence_queue.size
    sum(losses).backward()  # queues changed in place after use: snapshots keep autograd valid
    assert online_before[0].shape == next(model.online.parameters()).grad.shape


def test_authors_enqueue_order_puts_current_keys_among_term3_negatives(quick_settings):
    losses = {}
    for point in ("between", "after"):
        _, model, train_data, _, _ = build(quick_settings, enqueue=point, loss_weights=[0.0, 0.0, 1.0, 0.0])
        losses[point] = model.calculate_loss(first_batch(train_data))[2].item()
    assert losses["between"] > losses["after"]


@pytest.mark.parametrize("negatives", ["catalogue", "batch", "queue"])
def test_each_negative_source_trains(quick_settings, negatives):
    _, model, train_data, _, _ = build(quick_settings, seq_item_negatives=negatives)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    batch = first_batch(train_data)
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = model.calculate_loss(batch)[0]
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    # from step 2 on the queue (50) holds the first two batches' keys: the first loss has fewer
    # negatives; the default adapter's noisy gate and dropout make single steps noisy
    assert sum(losses[-5:]) < sum(losses[1:6])


def test_item_vectors_are_encoded_once_per_evaluation_pass(quick_settings):
    config, model, _, valid_data, _ = build(quick_settings, eval_batch_size=8)
    calls = []
    original = model._encode_all_items
    model._encode_all_items = lambda tower: calls.append(1) or original(tower)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    assert len(valid_data) > 2
    trainer.evaluate(valid_data, load_best_model=False)
    assert len(calls) == 1
    trainer.evaluate(valid_data, load_best_model=False)
    assert len(calls) == 2  # a new pass after model.eval() recomputes


def test_checkpoint_round_trip_restores_queues_and_momentum_encoder(quick_settings):
    config, model, train_data, valid_data, _ = build(quick_settings, **PAPER_TERMS)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    trainer.fit(train_data, valid_data, saved=True)
    checkpoint = torch.load(trainer.saved_model_file, weights_only=True)
    _, fresh, _, _, _ = build(quick_settings, seed=7, **PAPER_TERMS)
    assert not torch.equal(fresh.item_queue.vectors, model.item_queue.vectors)
    fresh.load_state_dict(checkpoint["state_dict"])
    saved = checkpoint["state_dict"]
    for name in ("item_queue.vectors", "item_queue.pointer", "sequence_queue.vectors", "sequence_queue.pointer"):
        assert torch.equal(fresh.state_dict()[name], saved[name])
    assert saved["item_queue.pointer"].item() != 0
    momentum_names = [name for name in saved if name.startswith("momentum_tower.")]
    assert momentum_names
    for name in momentum_names:
        assert torch.equal(fresh.state_dict()[name], saved[name])
    # and RecBole's own reload path (weights_only=True, adrec_recbole.safe_load) works
    result = trainer.evaluate(valid_data, load_best_model=True)
    assert result["ndcg@10"] >= 0


def test_finetune_mode_trains_the_plm_layers_in_use(quick_settings):
    config, model, train_data, _, _ = build(
        quick_settings, train_mode="finetune", plm_layer=1, seq_item_negatives="batch", momentum=0.5,
        loss_weights=[1.0, 0.0, 0.0, 0.2],  # term 4 makes momentum keys; term 1's loss must fall on a fixed batch
    )
    plm = model.online.plm.plm
    assert len(plm.encoder.layer) == 1
    plm_before = [p.detach().clone() for p in plm.parameters()]
    momentum_plm_before = [p.detach().clone() for p in model.momentum_tower.plm.parameters()]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batch = first_batch(train_data)
    losses = []
    for _ in range(8):
        optimizer.zero_grad()
        terms = model.calculate_loss(batch)
        sum(terms).backward()
        optimizer.step()
        losses.append(terms[0].item())
    assert losses[-1] < losses[0]
    assert any(not torch.equal(a, b) for a, b in zip(plm_before, plm.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(momentum_plm_before, model.momentum_tower.plm.parameters()))


def test_finetune_rejects_catalogue_negatives_with_a_reason(quick_settings):
    with pytest.raises(RunError, match="finetune"):
        build(quick_settings, train_mode="finetune", plm_layer=1, seq_item_negatives="catalogue")
