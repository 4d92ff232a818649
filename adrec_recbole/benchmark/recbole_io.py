"""RecBole reads atomic files the way the canonical layout writes them: plain TSV, no quoting.

RecBole 1.2.1 reads every atomic file with ``pandas.read_csv(..., engine="python")`` and
pandas' defaults, which (a) treat ``"`` as a quote character — an item title that starts with
``"`` swallows the following tabs and lines until the next ``"`` (a wrong row or a
``ParserError: unexpected end of data``) — and (b) turn the strings ``NA``, ``null``,
``None``, ``nan``, ... into missing values. The canonical layout (``adrec_recbole/data/layout.py``)
is unquoted TSV, and ADRec reads item text with ``quoting=QUOTE_NONE`` and no NA strings
(:mod:`adrec_recbole.text`). So that RecBole's feature models (FDSA) get the very text ADRec
gets, :func:`read_atomic_files_unquoted` gives RecBole's dataset module — and only that
module — a ``pandas`` whose ``read_csv`` defaults to ``quoting=QUOTE_NONE``,
``keep_default_na=False`` and ``na_values=[""]`` (an empty field is still missing, so RecBole's
own handling of empty fields is unchanged). Explicit arguments still win.

The benchmark worker applies it before every run (all models; it changes nothing for files
without quotes or NA strings). It belongs in :mod:`adrec_recbole.compat` so that
``run_recbole.py`` reads the same way; until then, runs outside the benchmark read ``.item``
with pandas' defaults.
"""
import csv
import types

import pandas

import recbole.data.dataset.dataset as _recbole_dataset


class _PandasReadingPlainTsv(types.ModuleType):
    """``pandas`` as seen by RecBole's dataset module: everything delegated, unquoted ``read_csv``."""

    def __getattr__(self, name):
        return getattr(pandas, name)

    @staticmethod
    def read_csv(*args, **kwargs):
        kwargs.setdefault("quoting", csv.QUOTE_NONE)
        kwargs.setdefault("keep_default_na", False)
        kwargs.setdefault("na_values", [""])
        return pandas.read_csv(*args, **kwargs)


def read_atomic_files_unquoted():
    """Apply the fix (idempotent); return True if it is in place."""
    if not isinstance(_recbole_dataset.pd, _PandasReadingPlainTsv):
        _recbole_dataset.pd = _PandasReadingPlainTsv("pandas")
    return True
