"""Recommendations (adrec_recbole/recommendation.py) and `python -m adrec_recbole.recommend`:
external ids and titles, the same ranking as RecBole's full_sort_topk, seen items left out, new
items scored from their text, every user in a file, bad input as one line."""
import csv
import json

import pytest
from recbole.utils.case_study import full_sort_topk

from adrec_recbole.inference import load_checkpoint
from adrec_recbole.quick_start import RunError
from adrec_recbole.recommend import main as recommend_main
from adrec_recbole.recommendation import Recommender, read_new_items
from conftest import COLD_ITEM_TITLE, FAMILIES, TEXT_ONLY_TITLES, one_line_error

TITLES = [title for family in FAMILIES.values() for title in family] + [COLD_ITEM_TITLE] + TEXT_ONLY_TITLES


def file_rows(root, split):
    with open(root / "Cold" / f"Cold.{split}.inter") as handle:
        next(handle)
        return [(user, history.split(), target) for user, history, target in (line.rstrip("\n").split("\t")
                                                                                for line in handle)]


@pytest.fixture(scope="module")
def loaded(trained_checkpoints):
    return {model: load_checkpoint(result["checkpoint"]) for model, result in trained_checkpoints.items()}


@pytest.mark.parametrize("model", ["ADRec", "SASRec"])
def test_history_of_a_test_row_ranks_as_recbole_full_sort_topk(model, loaded, cold_data_root):
    recommender = Recommender(loaded[model])
    test_rows = file_rows(cold_data_root, "test")
    dataset = loaded[model].dataset
    uids = dataset.token2id(dataset.uid_field, [user for user, _, _ in test_rows])
    scores, items = full_sort_topk(uids, loaded[model].model, loaded[model].test_data, k=5,
                                   device=loaded[model].config["device"])
    for row, (user, history, _) in enumerate(test_rows):
        ranked = recommender.recommend(history=history, topk=5)
        assert [entry["item_id"] for entry in ranked] == list(dataset.id2token(dataset.iid_field, items[row]))
        assert [entry["score"] for entry in ranked] == pytest.approx(scores[row].tolist(), abs=1e-6)
        assert [entry["rank"] for entry in ranked] == [1, 2, 3, 4, 5]
        assert all(entry["title"] == TITLES[int(entry["item_id"])]
                   for entry in ranked)


def test_a_user_is_recommended_for_from_everything_known(loaded, cold_data_root):
    recommender = Recommender(loaded["ADRec"])
    user, history, target = file_rows(cold_data_root, "test")[5]  # user 5 ends with the cold item 12
    assert target == "12"
    catalogue = recommender.catalogue
    assert [catalogue.item_ids[item] for item in recommender.known_sequence(catalogue.user(user))] == history + [target]
    assert recommender.recommend(user=user, topk=7) == recommender.recommend(history=history + [target], topk=7)

    seen = {item for split in ("train", "valid", "test") for row_user, row_history, row_target in
            file_rows(cold_data_root, split) if row_user == user for item in row_history + [row_target]}
    everything = recommender.recommend(user=user, topk=16)
    unseen = recommender.recommend(user=user, topk=16, exclude_seen=True)
    assert {entry["item_id"] for entry in unseen} == {str(item) for item in range(15)} - seen
    assert [entry["item_id"] for entry in unseen] == [entry["item_id"] for entry in everything
                                                      if entry["item_id"] not in seen]


def test_new_items_are_scored_from_their_text(loaded, tmp_path):
    new_file = tmp_path / "new.tsv"
    new_file.write_text("item_id\ttext\nNEW-COPY\tguitar capo clamp\nNEW-LAB\tdigital pipette\n")
    new_items = read_new_items(new_file)
    assert new_items == [("NEW-COPY", "guitar capo clamp"), ("NEW-LAB", "digital pipette")]
    recommender = Recommender(loaded["ADRec"], new_items)
    ranked = recommender.recommend(history=["0", "2"], topk=17)
    score = {entry["item_id"]: entry["score"] for entry in ranked}
    assert len(ranked) == 17  # 15 catalogue items and the two new ones
    assert score["NEW-COPY"] == pytest.approx(score["1"], abs=1e-5)  # the same text as item 1: the same vector
    assert next(entry for entry in ranked if entry["item_id"] == "NEW-LAB")["title"] == "digital pipette"

    with pytest.raises(RunError, match="new items need a model that reads item text"):
        Recommender(loaded["SASRec"], new_items)
    with pytest.raises(RunError, match="new item id.* 7 are already in the catalogue"):
        Recommender(loaded["ADRec"], [("7", "a text")])
    (tmp_path / "bad.tsv").write_text("A\tone\nB\n")
    with pytest.raises(RunError, match="bad.tsv:2: expected 'id<TAB>text'"):
        read_new_items(tmp_path / "bad.tsv")


def test_command_for_a_user_prints_titles(trained_checkpoints, capsys):
    checkpoint = trained_checkpoints["ADRec"]["checkpoint"]
    recommend_main(["--checkpoint", checkpoint, "--user", "5", "--topk", "3"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["rank", "item_id", "score", "title"] and len(lines) == 4
    rank, item, score, *title = lines[1].split()
    assert rank == "1" and " ".join(title) == TITLES[int(item)]
    recommend_main(["--checkpoint", checkpoint, "--history", "8,9", "--topk", "2", "--format", "json"])
    assert [entry["rank"] for entry in json.loads(capsys.readouterr().out)] == [1, 2]


def test_all_users_file(trained_checkpoints, loaded, tmp_path, capsys):
    out = tmp_path / "recs.csv"
    recommend_main(["--checkpoint", trained_checkpoints["SASRec"]["checkpoint"], "--all_users", "--out", str(out),
                    "--topk", "4", "--exclude_seen"])
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 60 * 4 and list(rows[0]) == ["user_id", "rank", "item_id", "score", "title"]
    recommender = Recommender(loaded["SASRec"])
    for user in ("0", "59"):
        expected = recommender.recommend(user=user, topk=4, exclude_seen=True)
        mine = [row for row in rows if row["user_id"] == user]
        assert [row["item_id"] for row in mine] == [entry["item_id"] for entry in expected]
        assert [float(row["score"]) for row in mine] == pytest.approx([entry["score"] for entry in expected], abs=1e-6)


def bad_input(tmp_path, monkeypatch, capsys, *args):
    return one_line_error(recommend_main, args, tmp_path, monkeypatch, capsys)


def test_bad_input_is_one_line_and_writes_nothing(trained_checkpoints, tmp_path, monkeypatch, capsys):
    checkpoint = trained_checkpoints["ADRec"]["checkpoint"]
    assert bad_input(tmp_path, monkeypatch, capsys, "--checkpoint", checkpoint, "--user", "A-NOBODY") == (
        "error: unknown user id A-NOBODY: not a user of Cold")
    assert bad_input(tmp_path, monkeypatch, capsys, "--checkpoint", checkpoint, "--history", "1,B00NOPE,2") == (
        "error: unknown item id(s) B00NOPE: not in the catalogue of Cold")
    assert bad_input(tmp_path, monkeypatch, capsys, "--checkpoint", checkpoint, "--all_users") == (
        "error: --out goes with --all_users (and --all_users needs --out)")
    assert bad_input(tmp_path, monkeypatch, capsys, "--checkpoint", checkpoint, "--history", "1", "--topk", "0") == (
        "error: --topk 0: expected an integer >= 1")
    (tmp_path / "new.tsv").write_text("X\tsome text\nX\tagain\n")
    assert bad_input(tmp_path, monkeypatch, capsys, "--checkpoint", checkpoint, "--history", "1",
                     "--new_items", str(tmp_path / "new.tsv")) == (
        f"error: {tmp_path / 'new.tsv'}:2: item id 'X' repeated (first on line 1)")
