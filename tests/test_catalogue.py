"""The item catalogue (every item of the item file) and the zero-shot setting
(adrec_recbole/catalogue.py): new items join after RecBole's ids; with no new item, data and
metrics are exactly those of RecBole's own vocabulary; hidden items leave training entirely."""
import pytest
import torch
from recbole.data.dataset import SequentialDataset
from recbole.data.interaction import Interaction

from adrec_recbole import quick_start
from adrec_recbole.catalogue import remove_items_from_training, zero_shot_item_ids
from adrec_recbole.quick_start import RunError, build_config, build_dataset, run
from adrec_recbole.safe_load import create_dataset_without_pickles, data_preparation_without_pickles, recbole_dataset_class
from adrec_recbole.text import item_texts_for_dataset
from conftest import COLD_ITEM_TITLE, TEXT_ONLY_TITLES


class ADRecDatasetBeforeTheCatalogue(SequentialDataset):
    """ADRec's dataset as it was before the catalogue: RecBole's vocabulary plus item texts."""

    def __init__(self, config):
        super().__init__(config)
        self.item_texts, self.missing_text_items = item_texts_for_dataset(self, config)


def build_dataset_before_the_catalogue(config):
    plugin = config["model"] == "ADRec"
    return create_dataset_without_pickles(config, ADRecDatasetBeforeTheCatalogue if plugin else None)


def dataset_for(model, data_root, tmp_path, **overrides):
    config = build_config(model, "Cold", config_dict={
        "data_path": str(data_root), "checkpoint_dir": str(tmp_path / "saved"), "plm_cache_dir": str(tmp_path / "cache"),
        "state": "ERROR", **overrides})
    return config, build_dataset(config)


@pytest.mark.parametrize("model", ["ADRec", "SASRec", "Pop"])
def test_items_without_interactions_join_after_recbole_ids(model, cold_data_root, tmp_path):
    config, dataset = dataset_for(model, cold_data_root, tmp_path)
    stock = recbole_dataset_class(config)(config)  # RecBole's own vocabulary: the interaction files only
    tokens, stock_tokens = list(dataset.field2id_token["item_id"]), list(stock.field2id_token["item_id"])
    assert len(stock_tokens) == 1 + 13  # [PAD] + items 0..12
    assert tokens == stock_tokens + ["13", "14"]  # the two text-only items, in file order, after RecBole's
    assert list(dataset.field2id_token["item_id_list"]) == tokens  # the history column shares the vocabulary
    assert dataset.item_num == 16
    assert dataset.inter_feat["item_id"].tolist() == stock.inter_feat["item_id"].tolist()  # same ids for the same rows
    if model == "ADRec":
        assert dataset.item_texts[-2:] == TEXT_ONLY_TITLES
        assert dataset.item_texts[tokens.index("12")] == COLD_ITEM_TITLE


def test_interactions_catalogue_keeps_recbole_vocabulary(cold_data_root, tmp_path):
    config, dataset = dataset_for("SASRec", cold_data_root, tmp_path, item_catalogue="interactions")
    assert list(dataset.field2id_token["item_id"]) == list(SequentialDataset(config).field2id_token["item_id"])
    with pytest.raises(RunError, match="item_catalogue='all': expected one of text, interactions"):
        build_config("SASRec", "Cold", config_dict={"data_path": str(cold_data_root), "item_catalogue": "all"})
    with pytest.raises(RunError, match=r"zero_shot_items=1.5: expected a number in \[0, 1\)"):
        build_config("SASRec", "Cold", config_dict={"data_path": str(cold_data_root), "zero_shot_items": 1.5})


@pytest.mark.parametrize("model", ["ADRec", "SASRec", "Pop"])
def test_without_new_items_data_and_metrics_are_those_before_the_catalogue(model, quick_settings, monkeypatch):
    """The invariant the running benchmark relies on: an item file that adds no item changes nothing."""
    config = build_config(model, "Tiny", config_dict=quick_settings)
    now, before = build_dataset(config), build_dataset_before_the_catalogue(config)
    assert list(now.field2id_token["item_id"]) == list(before.field2id_token["item_id"])
    assert list(now.field2id_token["user_id"]) == list(before.field2id_token["user_id"])
    for split_now, split_before in zip(data_preparation_without_pickles(config, now)[0:3],
                                       data_preparation_without_pickles(config, before)[0:3]):
        for field in split_before._dataset.inter_feat.columns:
            assert torch.equal(split_now._dataset.inter_feat[field], split_before._dataset.inter_feat[field])

    settings = {**quick_settings, "epochs": 1}
    result_now = run(model, "Tiny", config_dict={**settings, "checkpoint_dir": settings["checkpoint_dir"] + "/now"})
    monkeypatch.setattr(quick_start, "build_dataset", build_dataset_before_the_catalogue)
    result_before = run(model, "Tiny", config_dict={**settings, "checkpoint_dir": settings["checkpoint_dir"] + "/before"})
    assert result_now["best_valid_result"] == result_before["best_valid_result"]
    assert result_now["test_result"] == result_before["test_result"]


def test_hidden_items_leave_histories_and_targets():
    class Split:  # the parts of a RecBole dataset that remove_items_from_training reads
        iid_field, item_num, config = "item_id", 8, {"LIST_SUFFIX": "_list", "ITEM_LIST_LENGTH_FIELD": "item_length"}

        def __init__(self, inter):
            self.inter_feat = inter

        def copy(self, inter):
            return Split(inter)

    rows = Interaction({
        "user_id": torch.tensor([1, 1, 2, 3]),
        "item_id_list": torch.tensor([[1, 2, 3, 0], [1, 2, 0, 0], [2, 0, 0, 0], [4, 5, 6, 7]]),
        "item_length": torch.tensor([3, 2, 1, 4]),
        "item_id": torch.tensor([4, 3, 5, 2]),
    })
    kept = remove_items_from_training(Split(rows), torch.tensor([2, 6])).inter_feat
    # row 3 targets hidden item 2: dropped; row 2's history was only item 2: dropped
    assert kept["user_id"].tolist() == [1, 1]
    assert kept["item_id_list"].tolist() == [[1, 3, 0, 0], [1, 0, 0, 0]]
    assert kept["item_length"].tolist() == [2, 1]
    assert kept["item_id"].tolist() == [4, 3]


def test_zero_shot_items_are_a_seeded_tenth_of_the_catalogue():
    first, again, other = (zero_shot_item_ids(4386, 0.1, seed) for seed in (2020, 2020, 2021))
    assert len(first) == 438 and torch.equal(first, again) and not torch.equal(first, other)  # round(438.5)
    assert int(first.min()) >= 1 and int(first.max()) <= 4385 and len(first.unique()) == 438


def test_zero_shot_run_trains_without_the_hidden_items_and_reports_their_test_rows(cold_data_root, tmp_path):
    settings = {"data_path": str(cold_data_root), "checkpoint_dir": str(tmp_path / "saved"), "state": "ERROR",
                "epochs": 1, "topk": [10], "zero_shot_items": 0.25, "result_file": str(tmp_path / "r.json")}
    config = build_config("SASRec", "Cold", config_dict=settings)
    train, _, test = data_preparation_without_pickles(config, build_dataset(config))
    hidden = train._dataset.zero_shot_items
    assert len(hidden) == 4  # round(0.25 * 15 items)
    inter = train._dataset.inter_feat
    assert not torch.isin(inter["item_id"], hidden).any() and not torch.isin(inter["item_id_list"], hidden).any()
    targets = test._dataset.inter_feat["item_id"]
    expected_rows = int(torch.isin(targets, hidden).sum())

    result = run("SASRec", "Cold", config_dict=settings)
    assert result["zero_shot"]["rows"] == expected_rows > 0
    assert result["zero_shot"]["items"] == len(torch.unique(targets[torch.isin(targets, hidden)]))
    assert result["cold_start"]["rows"] >= expected_rows  # hidden targets are never in training either
