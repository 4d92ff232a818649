"""Cold-start rows (adrec_recbole/cold_start.py): which test rows count, and their metrics equal
the metrics computed by hand from the model's ranking of those rows' targets."""
import math

import pytest
import torch

from adrec_recbole.cold_start import cold_rows, items_seen_in
from adrec_recbole.inference import load_checkpoint


@pytest.mark.parametrize("model", ["ADRec", "SASRec"])
def test_cold_rows_are_the_test_rows_whose_target_training_never_saw(model, trained_checkpoints):
    result = trained_checkpoints[model]
    assert (result["cold_start"]["rows"], result["cold_start"]["items"]) == (4, 1)  # users 2, 5, 8, 11 -> item 12

    loaded = load_checkpoint(result["checkpoint"])
    train, test = loaded.train_data._dataset, loaded.test_data._dataset
    rows = cold_rows(train, test)
    tokens = test.field2id_token["item_id"]
    assert sorted(test.field2id_token["user_id"][test.inter_feat["user_id"][rows]].tolist()) == ["11", "2", "5", "8"]
    assert {tokens[item] for item in test.inter_feat["item_id"][rows].tolist()} == {"12"}
    seen = items_seen_in(train)
    assert {tokens[item] for item in (~seen).nonzero().flatten().tolist()} == {"[PAD]", "12", "13", "14"}

    with torch.no_grad():  # by hand: the rank of each cold target among all items, padding excluded
        batch = test.inter_feat[rows.nonzero().flatten()]
        scores = loaded.model.full_sort_predict(batch.to(loaded.config["device"])).view(len(batch), -1).cpu()
        scores[:, 0] = -torch.inf
        target_scores = scores.gather(1, batch["item_id"].view(-1, 1))
        ranks = (scores > target_scores).sum(dim=1) + 1
    hits = [rank for rank in ranks.tolist() if rank <= 10]
    expected = {
        "recall@10": len(hits) / len(ranks),
        "ndcg@10": sum(1 / math.log2(rank + 1) for rank in hits) / len(ranks),
        "mrr@10": sum(1 / rank for rank in hits) / len(ranks),
    }
    assert result["cold_start"]["result"] == {name: round(value, 4) for name, value in expected.items()}
