"""Summary statistics of a dataset in the canonical layout (or UniSRec's, read as it is)."""
import gc
from contextlib import contextmanager
from pathlib import Path

from adrec_recbole.data.errors import DataFormatError
from adrec_recbole.data.layout import ITEM_TEXT_FIELDS, SPLITS, inter_file
from adrec_recbole.data.validate import validate_dataset


def read_user_sequences(folder, name):
    """Rebuild each user's sequence from the three ``.inter`` files, validating the folder on the way.

    Rows are taken in layout order (train longest prefix first, then valid, then test); the first
    row's history plus every row's target is the sequence, and every history must be a suffix of
    the sequence before its target. Returns ``({user: [item tokens]}, {user: test history length})``.
    """
    sequences, test_history, _ = _sequences_and_check(folder, name)
    return sequences, test_history


def _sequences_and_check(folder, name):
    """:func:`read_user_sequences` plus the folder's :class:`~adrec_recbole.data.validate.DatasetCheck`."""
    folder = Path(folder)
    rows = {}

    def collect(split, line_number, user, history, target):
        by_split = rows.get(user)
        if by_split is None:
            by_split = rows[user] = {key: [] for key in SPLITS}
        by_split[split].append((history, target, split, line_number))

    with _collector_paused():
        check = validate_dataset(folder, name, on_row=collect)
        sequences, test_history = _rebuild(folder, name, rows)
    return sequences, test_history, check


@contextmanager
def _collector_paused():
    """Pause Python's cyclic garbage collector: reading builds millions of small lists and no
    cycles, which it would rescan over and over (a third of the time on Games)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def _rebuild(folder, name, rows):
    """The sequences and test history lengths of :func:`read_user_sequences` from the collected rows."""
    sequences, test_history = {}, {}
    for user, by_split in rows.items():
        ordered = by_split["train"][::-1] + by_split["valid"] + by_split["test"]
        sequence = list(ordered[0][0])
        for history, target, split, line_number in ordered:
            if sequence[len(sequence) - len(history):] != history:
                raise DataFormatError(
                    f"{folder / inter_file(name, split)}:{line_number}: "
                    f"history of user {user} does not continue the rows before it"
                )
            sequence.append(target)
        sequences[user] = sequence
        test_history[user] = len(by_split["test"][-1][0]) if by_split["test"] else 0
    return sequences, test_history


def item_text_fields(check):
    """``{item token: {title, brand, categories}}`` of a checked dataset; UniSRec's single text column
    counts as the title, as :func:`~adrec_recbole.data.importers.import_unisrec` writes it."""
    return {
        item: {field: row.get(field, row.get("text", "") if field == "title" else "") for field in ITEM_TEXT_FIELDS}
        for item, row in check.item_fields.items()
    }


def dataset_stats(folder, name):
    """Users, items, interactions, item-text coverage and sequence lengths of ``{folder}`` as a dict.

    The folder passes :func:`~adrec_recbole.data.validate.validate_dataset` first. Interactions are
    the user-item events of the rebuilt sequences (the first history plus every target), i.e. train
    rows + what valid and test add; for leave-one-out data, the sum of every user's full sequence
    length. Items are those that occur in the interactions; coverage counts those with a non-empty
    title, or with any non-empty text field.
    """
    sequences, test_history, check = _sequences_and_check(folder, name)
    fields = item_text_fields(check)
    items = {item for sequence in sequences.values() for item in sequence}
    with_text = sum(1 for item in items if any(fields.get(item, {}).values()))
    with_title = sum(1 for item in items if fields.get(item, {}).get("title"))
    lengths = [len(sequence) for sequence in sequences.values()]
    histories = list(test_history.values())
    return {
        "dataset": name,
        "users": len(sequences),
        "items": len(items),
        "interactions": sum(lengths),
        "catalog_items": len(fields),
        "items_with_text": with_text,
        "text_coverage": round(with_text / len(items), 4) if items else 0.0,
        "items_with_title": with_title,
        "title_coverage": round(with_title / len(items), 4) if items else 0.0,
        "mean_sequence_length": round(sum(lengths) / len(lengths), 2) if lengths else 0.0,
        "max_sequence_length": max(lengths, default=0),
        "mean_test_history_length": round(sum(histories) / len(histories), 2) if histories else 0.0,
        "max_test_history_length": max(histories, default=0),
    }
