"""Vectors for serving (adrec_recbole/vectors.py) and `python -m adrec_recbole.export`: the files
hold the model's own vectors, their dot products are its scores, and FAISS's top-k is its top-k."""
import csv
import json
import os
import sys

import numpy as np
import pytest
import torch

from adrec_recbole.export import main as export_main
from adrec_recbole.inference import load_checkpoint
from adrec_recbole.quick_start import run

faiss = pytest.importorskip("faiss")


def read_tsv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


@pytest.mark.parametrize("model", ["ADRec", "SASRec"])
def test_exported_vectors_score_as_the_model_and_faiss_ranks_as_it(model, trained_checkpoints, tmp_path, capsys):
    checkpoint = trained_checkpoints[model]["checkpoint"]
    out = tmp_path / "vectors"
    export_main(["--checkpoint", checkpoint, "--out", str(out), "--topk", "5"])
    manifest = json.loads(capsys.readouterr().out)
    assert sorted(os.listdir(out)) == sorted(manifest["files"])
    assert manifest["faiss_check"]["rows"] == manifest["faiss_check"]["same_top_k_up_to_ties"] == 60

    loaded = load_checkpoint(checkpoint)
    items, sequences = np.load(out / "items.npy"), np.load(out / "sequences.npy")
    item_rows, sequence_rows = read_tsv(out / "items.tsv"), read_tsv(out / "sequences.tsv")
    assert items.shape == (15, 32) and sequences.shape == (60, 32) and items.dtype == np.float32
    tokens = loaded.dataset.field2id_token["item_id"]
    assert [row["item_id"] for row in item_rows] == list(tokens[1:])  # row r = internal id r + 1
    test = loaded.test_data._dataset.inter_feat
    assert [row["user_id"] for row in sequence_rows] == list(loaded.dataset.field2id_token["user_id"][test["user_id"]])
    assert [row["target_item_id"] for row in sequence_rows] == list(tokens[test["item_id"]])

    with torch.no_grad():  # independent path: the model's full-ranking scores of the test rows
        scores = loaded.model.full_sort_predict(test.to(loaded.config["device"])).view(60, -1).cpu()[:, 1:]
    assert torch.allclose(torch.from_numpy(sequences @ items.T), scores, atol=1e-5, rtol=1e-4)
    if model == "ADRec":
        assert np.allclose(np.linalg.norm(items, axis=1), 1, atol=1e-5)  # cosine: unit vectors
    index = faiss.read_index(str(out / "items.faiss"))
    found_scores, found = index.search(sequences, 5)
    exact = torch.topk(scores, 5)
    assert torch.allclose(torch.from_numpy(found_scores), exact.values, atol=1e-5, rtol=1e-4)
    assert (torch.from_numpy(found) == exact.indices).float().mean() > 0.9  # the rest: exact ties


def test_models_without_vectors_and_missing_faiss_are_one_line(cold_data_root, tmp_path, monkeypatch, capsys):
    pop = run("Pop", "Cold", config_dict={"data_path": str(cold_data_root), "checkpoint_dir": str(tmp_path / "saved"),
                                          "state": "ERROR", "epochs": 1, "topk": [10],
                                          "result_file": str(tmp_path / "pop.json")})
    out = tmp_path / "vectors"
    with pytest.raises(SystemExit) as stop:
        export_main(["--checkpoint", pop["checkpoint"], "--out", str(out)])
    assert stop.value.code == 2 and not out.exists()
    assert capsys.readouterr().err.strip() == (
        "error: Pop's scores are not the dot product of a sequence vector and its item embedding: "
        "export supports ADRec and RecBole models such as SASRec and GRU4Rec")

    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss fails
    with pytest.raises(SystemExit) as stop:
        export_main(["--checkpoint", pop["checkpoint"], "--out", str(out)])
    assert stop.value.code == 2 and capsys.readouterr().err.strip() == "error: export needs FAISS: pip install faiss-cpu"
