"""adrec-recbole: ADRec (KBS 2025) as a RecBole plugin model.

Import the model from :mod:`adrec_recbole.model` and the run path from
:mod:`adrec_recbole.quick_start`; this package module itself stays import-light so that the
data tools start fast.
"""
__version__ = "0.1.0"
