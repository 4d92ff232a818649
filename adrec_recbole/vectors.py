"""Item and sequence vectors of a loaded model, for serving: ``.npy`` files, id maps and a FAISS
index whose top-k is the model's own top-k.

A model's full-ranking score must be the dot product of a sequence vector and an item vector:
ADRec's are unit vectors (:meth:`ADRec.sequence_vectors`, :meth:`ADRec.item_vectors`: the score
is their cosine); for RecBole's sequential models whose score is ``forward(history) @
item_embedding.weight.T`` (SASRec, GRU4Rec, ...) those two, checked against ``full_sort_predict``
on every batch. Other models are refused with one line.

:func:`export_vectors` writes into one folder (each file atomically; ``export.json``, the
manifest, last, so a folder without it is incomplete):

* ``items.npy`` [catalogue, d] float32, row ``r`` = the item on line ``r`` of ``items.tsv``
  (``row  item_id  title``; the padding item is left out);
* ``sequences.npy`` [test rows, d] float32, the vector of each test row's history, and
  ``sequences.tsv`` (``row  user_id  target_item_id``);
* ``items.faiss``: a ``faiss.IndexFlatIP`` of ``items.npy`` (exact inner product; ids are rows
  of ``items.tsv``);
* ``export.json``: model, dataset, checkpoint, score, sizes, and the check that FAISS's top-k of
  every test sequence equals the model's exact top-k (``torch.topk`` of ``full_sort_predict``,
  as evaluation ranks). Items of equal score are a tie that either may order differently (items
  with identical texts have identical ADRec vectors; other scores agree to about 1e-7), so the
  check counts a row as equal when the exact scores of FAISS's items are the exact top-k scores,
  position by position (:data:`TIE_TOLERANCE`); it also counts the rows equal in order and as
  sets.
"""
import itertools
import os

import numpy as np
import torch
from tqdm import tqdm

from adrec_recbole.atomic import _replace_with, write_json
from adrec_recbole.inference import Catalogue
from adrec_recbole.quick_start import RunError

MANIFEST = "export.json"
#: two scores closer than this are a tie (float32 sums in another order differ by about 1e-7)
TIE_TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}


def score_vectors(model, interaction):
    """``(sequence vectors [B, d], item vectors [n_items, d])`` whose dot products are the model's
    full-ranking scores of ``interaction``; :class:`RunError` for a model without such vectors."""
    if hasattr(model, "sequence_vectors") and hasattr(model, "item_vectors"):
        return model.sequence_vectors(interaction), model.item_vectors()
    name = type(model).__name__
    if hasattr(model, "item_embedding") and hasattr(model, "ITEM_SEQ"):
        try:
            sequences = model.forward(interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN])
        except TypeError:  # a forward of another signature (BERT4Rec)
            sequences = None
        items = model.item_embedding.weight
        if torch.is_tensor(sequences) and sequences.dim() == 2 and sequences.size(1) == items.size(1):
            scores = model.full_sort_predict(interaction).view(len(interaction), -1)
            if torch.allclose(sequences @ items.t(), scores, rtol=1e-4, atol=1e-5):
                return sequences, items
    raise RunError(f"{name}'s scores are not the dot product of a sequence vector and its item embedding: "
                   "export supports ADRec and RecBole models such as SASRec and GRU4Rec")


def import_faiss():
    try:
        import faiss
    except ImportError:
        raise RunError("export needs FAISS: pip install faiss-cpu") from None
    return faiss


@torch.no_grad()
def test_vectors(loaded, topk, progress=True):
    """Sequence vectors, users, targets and the exact top-``topk`` (scores, internal ids) of every
    test row, and the item vectors (all as CPU tensors)."""
    model, dataset = loaded.model, loaded.test_data._dataset
    sequences, users, targets, exact_scores, exact = [], [], [], [], []
    items = None
    batches = iter(loaded.test_data)
    first = next(batches)
    score_vectors(model, first[0].to(loaded.config["device"]))  # refuse a model without such vectors at once
    for interaction, *_ in tqdm(itertools.chain([first], batches), total=len(loaded.test_data), desc="test sequences",
                                unit=" batches", disable=not progress):
        interaction = interaction.to(loaded.config["device"])
        batch_sequences, items = score_vectors(model, interaction)
        scores = model.full_sort_predict(interaction).view(len(interaction), -1)
        scores[:, 0] = -torch.inf  # the padding item, as RecBole's evaluation
        top = torch.topk(scores, topk)
        exact_scores.append(top.values.float().cpu())
        exact.append(top.indices.cpu())
        sequences.append(batch_sequences.float().cpu())
        users.append(interaction[dataset.uid_field].cpu())
        targets.append(interaction[dataset.iid_field].cpu())
    return (torch.cat(sequences), items.detach().float().cpu(), torch.cat(users), torch.cat(targets),
            torch.cat(exact_scores), torch.cat(exact))


def _write_tsv(path, header, rows):
    def write(temporary):
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write("\t".join(header) + "\n")
            for row in rows:
                handle.write("\t".join(str(value) for value in row) + "\n")
    _replace_with(path, write, ".tsv")


def export_vectors(loaded, out_dir, topk=10, progress=True):
    """Write the files of the module docstring into ``out_dir``; return the manifest (a dict)."""
    faiss = import_faiss()
    sequences, items, users, targets, exact_scores, exact = test_vectors(loaded, topk, progress)
    catalogue = Catalogue(loaded)
    item_matrix = np.ascontiguousarray(items[1:].numpy(), dtype=np.float32)
    sequence_matrix = np.ascontiguousarray(sequences.numpy(), dtype=np.float32)
    index = faiss.IndexFlatIP(item_matrix.shape[1])
    index.add(item_matrix)
    _, rows = index.search(sequence_matrix, topk)
    found = torch.from_numpy(rows).long() + 1  # index rows -> internal ids (the padding item is not in it)
    same_order = (found == exact).all(dim=1)
    same_set = (found.sort(dim=1).values == exact.sort(dim=1).values).all(dim=1)
    # Items of equal score (identical texts give identical vectors) may come in either order; FAISS's
    # list is a top-k of the model when its items' scores are the exact top-k scores, position by position.
    found_scores = (sequences.unsqueeze(1) * items[found]).sum(dim=-1)
    up_to_ties = torch.isclose(found_scores, exact_scores, **TIE_TOLERANCE).all(dim=1)
    _, copies = np.unique(item_matrix, axis=0, return_counts=True)

    os.makedirs(out_dir, exist_ok=True)
    manifest_path = os.path.join(out_dir, MANIFEST)
    if os.path.exists(manifest_path):
        os.remove(manifest_path)  # from here until the new manifest, the folder reads as incomplete
    _replace_with(os.path.join(out_dir, "items.npy"), lambda path: np.save(path, item_matrix), ".npy")
    _replace_with(os.path.join(out_dir, "sequences.npy"), lambda path: np.save(path, sequence_matrix), ".npy")
    _write_tsv(os.path.join(out_dir, "items.tsv"), ("row", "item_id", "title"),
               ((row, catalogue.item_ids[row + 1], catalogue.titles[row + 1]) for row in range(len(item_matrix))))
    _write_tsv(os.path.join(out_dir, "sequences.tsv"), ("row", "user_id", "target_item_id"),
               ((row, catalogue.user_ids[user], catalogue.item_ids[target])
                for row, (user, target) in enumerate(zip(users.tolist(), targets.tolist()))))
    _replace_with(os.path.join(out_dir, "items.faiss"), lambda path: faiss.write_index(index, path), ".faiss")
    manifest = {
        "model": loaded.config["model"], "dataset": loaded.config["dataset"], "checkpoint": loaded.checkpoint_file,
        "score": "cosine: unit vectors, inner product" if hasattr(loaded.model, "item_vectors") else "inner product",
        "dimension": int(item_matrix.shape[1]), "items": int(item_matrix.shape[0]),
        "test_sequences": int(sequence_matrix.shape[0]),
        "faiss_check": {
            "index": "IndexFlatIP", "topk": topk, "rows": int(len(found)),
            "same_top_k_up_to_ties": int(up_to_ties.sum()), "same_top_k_in_order": int(same_order.sum()),
            "same_top_k_set": int(same_set.sum()), "tie_tolerance": TIE_TOLERANCE,
            "items_sharing_their_vector": int(copies[copies > 1].sum()),
        },
        "files": ["items.npy", "items.tsv", "sequences.npy", "sequences.tsv", "items.faiss", MANIFEST],
    }
    write_json(manifest_path, manifest)
    return manifest
