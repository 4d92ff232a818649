"""Summary statistics of a dataset in the canonical layout."""
from pathlib import Path

from adrec_recbole.data.errors import DatasetNotFoundError
from adrec_recbole.data.layout import missing_files, read_item_fields, read_user_sequences


def dataset_stats(folder, name):
    """Users, items, interactions, item-text coverage and sequence lengths of ``{folder}`` as a dict.

    Interactions are the user-item events of the rebuilt sequences (the first history plus every
    target), i.e. train rows + what valid and test add; for leave-one-out data, the sum of every
    user's full sequence length. Items are those that occur in the interactions; coverage counts
    those with a non-empty title, or with any non-empty text field.
    """
    folder = Path(folder)
    missing = missing_files(folder, name)
    if missing:
        raise DatasetNotFoundError(f"{folder}: not a complete dataset (missing {', '.join(missing)})")
    sequences, test_history = read_user_sequences(folder, name)
    fields = read_item_fields(folder, name)
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
