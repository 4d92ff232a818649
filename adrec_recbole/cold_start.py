"""Metrics on the test rows a model could not have learned from: cold-start and zero-shot items.

* **Cold start**: the test rows whose target item never occurs in the training rows the model
  was trained on (neither as a target nor in a history). On Scientific that is 37 of 8,442 test
  rows (11 items): every item of these has text, so ADRec encodes it like any other.
* **Zero-shot** (only with ``zero_shot_items``, :mod:`adrec_recbole.catalogue`): the test rows
  whose target is one of the items hidden from training.

Each subset is scored exactly as the whole split: RecBole's own full-ranking loader and
``Trainer.evaluate`` over a copy of the split that holds only those rows, so its metrics are
the usual metrics (Recall, NDCG, MRR@k, full ranking over the same catalogue) averaged over
fewer rows. The run path reports them beside the test metrics (``result.json``: ``cold_start``,
``zero_shot``: ``{"rows", "items", "result"}``), and so do the benchmark records and
``python -m adrec_recbole.evaluate``.
"""
import torch


def items_seen_in(dataset):
    """Boolean [item_num]: which items occur in ``dataset``'s rows, as a target or in a history."""
    seen = torch.zeros(dataset.item_num, dtype=torch.bool)
    inter = dataset.inter_feat
    seen[inter[dataset.iid_field]] = True
    list_field = dataset.iid_field + dataset.config["LIST_SUFFIX"]
    if list_field in inter.interaction:
        seen[inter[list_field].flatten()] = True
    seen[0] = False  # padding
    return seen


def cold_rows(train_dataset, eval_dataset):
    """Boolean [rows of ``eval_dataset``]: the target never occurs in ``train_dataset``."""
    return ~items_seen_in(train_dataset)[eval_dataset.inter_feat[eval_dataset.iid_field]]


def zero_shot_rows(eval_dataset):
    """Boolean [rows of ``eval_dataset``]: the target is an item hidden from training (all False
    without ``zero_shot_items``)."""
    hidden = getattr(eval_dataset, "zero_shot_items", None)
    targets = eval_dataset.inter_feat[eval_dataset.iid_field]
    if hidden is None or not len(hidden):
        return torch.zeros(len(targets), dtype=torch.bool)
    return torch.isin(targets, hidden)


def loader_for_rows(loader, rows):
    """A loader of the same class and sampler as ``loader`` over the rows of its dataset where
    ``rows`` (boolean) holds."""
    dataset = loader._dataset
    subset = dataset.copy(dataset.inter_feat[rows.nonzero().squeeze(1)])
    return type(loader)(loader.config, subset, loader._sampler, shuffle=False)


def evaluate_rows(trainer, loader, rows, show_progress=False):
    """``{"rows", "items", "result"}``: RecBole's metrics over the rows where ``rows`` holds
    (``result`` None when there is none)."""
    count = int(rows.sum())
    targets = loader._dataset.inter_feat[loader._dataset.iid_field][rows]
    result = None
    if count:
        metrics = trainer.evaluate(loader_for_rows(loader, rows), load_best_model=False, show_progress=show_progress)
        result = {key: float(value) for key, value in metrics.items()}
    return {"rows": count, "items": int(targets.unique().numel()), "result": result}


def subset_results(trainer, train_data, eval_data, show_progress=False):
    """``{"cold_start": ..., "zero_shot": ...}`` (:func:`evaluate_rows`) for ``eval_data``, the
    model being the one ``trainer`` evaluates; ``zero_shot`` only with ``zero_shot_items``."""
    eval_dataset = eval_data._dataset
    results = {"cold_start": evaluate_rows(trainer, eval_data, cold_rows(train_data._dataset, eval_dataset),
                                           show_progress)}
    if len(getattr(eval_dataset, "zero_shot_items", ())):
        results["zero_shot"] = evaluate_rows(trainer, eval_data, zero_shot_rows(eval_dataset), show_progress)
    return results
