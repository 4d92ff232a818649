"""Item text for ADRec, read from the dataset's own atomic files (ADREC_SPEC section 1).

Two layouts are read, both keyed by the item tokens of the ``.inter`` files:

* ``{name}.item`` — the project's canonical layout: ``item_id:token`` plus text fields
  (``title``, ``brand``, ``categories``, any other ``token_seq``/``token`` column);
* ``{name}.text`` — UniSRec's layout: ``item_id:token text:token_seq`` keyed by ASIN, mapped
  to the ``.inter`` tokens through ``{name}.item2index`` when that file exists.

Each item's string is ``prompt + sep.join(non-empty fields in text_fields order)`` — the
authors' template is the prompt "Brought it for [mask]" followed by
``category [SEP] brand [SEP] title``. Items with no text at all receive a placeholder string;
they are counted and logged, never a failure inside a batch. The training path checks these
files first (:func:`adrec_recbole.data.validate.validate_dataset`: columns, field counts,
duplicate rows, unknown items), so the errors here are a second line of defence.
"""
import csv
import os
from logging import getLogger

import pandas as pd

from adrec_recbole.data.errors import DataFormatError, EncodingError
from adrec_recbole.data.layout import iter_lines, read_index


class ItemTextError(ValueError):
    """The dataset's item text files are missing or unreadable."""


def _read_atomic(path):
    """An atomic file as a DataFrame of strings, headers stripped of their ``:type``."""
    try:
        frame = pd.read_csv(
            path, sep="\t", dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE,
            encoding="utf-8",
        )
    except UnicodeDecodeError:
        try:
            for _ in iter_lines(path):  # pandas' error offset is within a buffer: find the line
                pass
        except EncodingError as error:
            raise ItemTextError(
                f"{path}: not UTF-8 at line {error.line} (byte 0x{error.byte:02x} at column {error.column})"
            ) from None
        raise
    except pd.errors.ParserError as error:
        raise ItemTextError(f"{path}: malformed line ({error})") from None
    frame.columns = [column.split(":")[0] for column in frame.columns]
    if "item_id" not in frame.columns:
        raise ItemTextError(f"{path}: no item_id column (header: {list(frame.columns)})")
    return frame


def read_item_text_table(dataset_dir, name):
    """``{item token: {field: text}}`` from ``{name}.item``, else from UniSRec's ``{name}.text``."""
    item_file = os.path.join(dataset_dir, f"{name}.item")
    text_file = os.path.join(dataset_dir, f"{name}.text")
    if os.path.isfile(item_file):
        source, frame = item_file, _read_atomic(item_file)
    elif os.path.isfile(text_file):
        source, frame = text_file, _read_atomic(text_file)
        index_file = os.path.join(dataset_dir, f"{name}.item2index")
        if os.path.isfile(index_file):
            try:
                asin_to_index = read_index(index_file)
            except DataFormatError as error:
                raise ItemTextError(str(error)) from None
            frame["item_id"] = frame["item_id"].map(asin_to_index)
            frame = frame[frame["item_id"].notna()]
    else:
        raise ItemTextError(
            f"no item text for dataset {name!r}: expected {item_file} (canonical layout) "
            f"or {text_file} (UniSRec layout)"
        )
    repeated = frame["item_id"].duplicated(keep="first")
    if repeated.any():
        raise ItemTextError(f"{source}: item {frame['item_id'][repeated].iloc[0]!r} has more than one row of text")
    return frame.set_index("item_id").to_dict(orient="index")


def compose_item_text(fields, text_fields, prompt="", separator=" [SEP] "):
    """One item's string: the prompt, then the non-empty ``text_fields`` joined by ``separator``."""
    parts = [" ".join(str(fields.get(field, "")).split()) for field in text_fields]
    body = separator.join(part for part in parts if part)
    if not body:
        return ""
    return f"{prompt} {body}".strip() if prompt else body


def item_texts_for_dataset(dataset, config):
    """Strings for every internal item id of a RecBole ``dataset`` (index 0, PAD, is empty).

    Uses ``text_fields``, ``text_prompt``, ``text_separator`` and ``missing_text_placeholder``
    from the config; logs how many items fell back to the placeholder.
    """
    name = config["dataset"]
    table = read_item_text_table(config["data_path"], name)  # RecBole's data_path ends in /name
    tokens = dataset.field2id_token[dataset.iid_field]
    texts, missing = [""], []
    for token in tokens[1:]:
        text = compose_item_text(
            table.get(token, {}), config["text_fields"], config["text_prompt"] or "",
            config["text_separator"],
        )
        if not text:
            missing.append(token)
            text = config["missing_text_placeholder"]
        texts.append(text)
    if missing:
        getLogger().warning(
            f"{len(missing)} of {len(tokens) - 1} items of {name} have no text in fields "
            f"{config['text_fields']}; they use the placeholder "
            f"{config['missing_text_placeholder']!r} (e.g. items {missing[:5]})"
        )
    return texts, len(missing)
