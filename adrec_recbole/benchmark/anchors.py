"""Published numbers to read our runs against (ADREC_SPEC.md section 6) — never our runs.

Each anchor carries the paper it was published in and the preprocessing of the data it was
measured on. Different preprocessings (which users/items survive filtering, text fields,
history caps) change the numbers by more than the gaps between models, so an anchor is only
a rough reference point unless its preprocessing is the one of the dataset we ran on. The
report prints them in their own table, labelled, and the chart leaves them out.

* Recformer (Li et al., KDD 2023), table of the six Amazon 2018 categories, Recformer's own
  preprocessing: NDCG@10, Recall@10 and MRR (the paper gives no cut-off for MRR).
* UniSRec (Hou et al., KDD 2022), its own preprocessing — the one of
  ``../shared/datasets/Scientific`` (8,442 users, 4,385 items, 59,427 interactions):
  Recall@10 and NDCG@10 of the text-only (inductive) and the text+ID variants.
* VQ-Rec (Hou et al., WWW 2023), RUCAIBox/VQ-Rec's README, "Results" table, row "VQ-Rec" (the
  pre-trained model of the paper, fine-tuned): Recall@10, NDCG@10, Recall@50, NDCG@50, measured
  on UniSRec's processed files (the repository tells to use UniSRec's datasets).
"""

RECFORMER = "Recformer (KDD 2023)"
UNISREC = "UniSRec (KDD 2022)"
VQREC = "VQ-Rec (WWW 2023)"

#: ``{source: short description of the preprocessing the numbers were measured on}``
PREPROCESSING = {
    RECFORMER: "Recformer preprocessing",
    UNISREC: "UniSRec preprocessing (the one of ../shared/datasets/Scientific)",
    VQREC: "UniSRec's files",
}

_RECFORMER_TABLE = {  # dataset: {model: (NDCG@10, Recall@10, MRR)}
    "Scientific": {"SASRec": (.0797, .1305, .0696), "UniSRec (text)": (.0862, .1255, .0786),
                   "Recformer": (.1027, .1448, .0951)},
    "Instruments": {"SASRec": (.0634, .0995, .0577), "UniSRec (text)": (.0785, .1119, .0740),
                    "Recformer": (.0830, .1052, .0807)},
    "Arts": {"SASRec": (.0848, .1342, .0742), "UniSRec (text)": (.0894, .1333, .0798),
             "Recformer": (.1252, .1614, .1189)},
    "Office": {"SASRec": (.0832, .1196, .0751), "UniSRec (text)": (.0919, .1262, .0848),
               "Recformer": (.1141, .1403, .1089)},
    "Games": {"SASRec": (.0547, .0953, .0505), "UniSRec (text)": (.0580, .0923, .0552),
              "Recformer": (.0684, .1039, .0650)},
    "Pet": {"SASRec": (.0569, .0881, .0507), "UniSRec (text)": (.0702, .0933, .0650),
            "Recformer": (.0972, .1162, .0940)},
}

_UNISREC_TABLE = {  # dataset: {model: (Recall@10, NDCG@10)}
    "Scientific": {"UniSRec (text, inductive)": (.1188, .0641), "UniSRec (text+ID)": (.1235, .0634)},
    "Instruments": {"UniSRec (text, inductive)": (.1189, .0680), "UniSRec (text+ID)": (.1267, .0748)},
    "Arts": {"UniSRec (text, inductive)": (.1066, .0586), "UniSRec (text+ID)": (.1239, .0712)},
    "Office": {"UniSRec (text, inductive)": (.1013, .0619), "UniSRec (text+ID)": (.1280, .0831)},
}

_VQREC_TABLE = {  # dataset: {model: (Recall@10, NDCG@10, Recall@50, NDCG@50)}, RUCAIBox/VQ-Rec README
    "Scientific": {"VQ-Rec": (.1211, .0643, .2369, .0897)},
    "Instruments": {"VQ-Rec": (.1222, .0758, .2343, .1002)},
    "Arts": {"VQ-Rec": (.1189, .0703, .2249, .0935)},
    "Office": {"VQ-Rec": (.1236, .0814, .1957, .0972)},
}

#: columns of an anchor row, in table order (``None``: not published)
METRICS = ("recall@10", "ndcg@10", "recall@50", "ndcg@50", "mrr")


#: what the project's copies of the shared datasets are, next to the anchors' preprocessings
_DATA_NOTES = {
    "Scientific": "Our Scientific data, when it comes from ../shared/datasets/Scientific, IS UniSRec's "
                  "preprocessing (8,442 users, 4,385 items, 59,427 interactions): the UniSRec rows are the "
                  "closest comparison, with VQ-Rec's (run on UniSRec's files); Recformer's rows come from Recformer's own preprocessing.",
    "Games": "Our Games data, when it comes from ../shared/datasets/Games, is RUCAIBox's 5-core processing "
             "(LC-Rec / LLMRank files: 50,546 users, 16,859 items, titles only) — neither Recformer's nor "
             "UniSRec's preprocessing.",
}


def data_note(dataset):
    """A sentence on how the project's copy of ``dataset`` relates to the anchors' data, or ``''``."""
    return _DATA_NOTES.get(dataset, "")


def label(source):
    """The label every anchor row carries: ``published, <preprocessing> — not our run``."""
    return f"published, {PREPROCESSING[source]} — not our run"


def anchors_for(dataset):
    """Published rows for ``dataset`` (case-insensitive name): Recformer's, UniSRec's, VQ-Rec's.

    Each row: ``{'source', 'preprocessing', 'label', 'model', 'recall@10', 'ndcg@10', 'recall@50',
    'ndcg@50', 'mrr'}``, ``None`` where the paper gives no number. Empty list for a dataset no paper covers.
    """
    rows = []
    tables = (_RECFORMER_TABLE, _UNISREC_TABLE, _VQREC_TABLE)
    key = {name.lower(): name for table in tables for name in table}.get(dataset.lower())
    for model, (ndcg, recall, mrr) in _RECFORMER_TABLE.get(key, {}).items():
        rows.append(_row(RECFORMER, model, {"recall@10": recall, "ndcg@10": ndcg, "mrr": mrr}))
    for model, (recall, ndcg) in _UNISREC_TABLE.get(key, {}).items():
        rows.append(_row(UNISREC, model, {"recall@10": recall, "ndcg@10": ndcg}))
    for model, (recall, ndcg, recall50, ndcg50) in _VQREC_TABLE.get(key, {}).items():
        rows.append(_row(VQREC, model, {"recall@10": recall, "ndcg@10": ndcg, "recall@50": recall50,
                                         "ndcg@50": ndcg50}))
    return rows


def _row(source, model, values):
    row = {"source": source, "preprocessing": PREPROCESSING[source], "label": label(source), "model": model}
    row.update({metric: values.get(metric) for metric in METRICS})
    return row
