"""Datasets for ADRec on RecBole: download, import, convert to the canonical layout, summarise.

See :mod:`adrec_recbole.data.layout` for the layout, :mod:`adrec_recbole.data.amazon` for the raw
Amazon 2018 pipeline and :mod:`adrec_recbole.data.importers` for UniSRec / LC-Rec folders.
:mod:`adrec_recbole.data.validate` checks a dataset folder before anything reads it.
Command line: ``python -m adrec_recbole.data {download,import,stats} --help``.
"""
from adrec_recbole.data.ensure import ensure_dataset
from adrec_recbole.data.errors import DataFormatError, DatasetNotFoundError
from adrec_recbole.data.validate import DatasetCheck, validate_dataset

__all__ = ["DataFormatError", "DatasetCheck", "DatasetNotFoundError", "ensure_dataset", "validate_dataset"]
