"""adrec-recbole: ADRec (KBS 2025) as a RecBole plugin model.

Import the model from :mod:`adrec_recbole.model` and the run path from
:mod:`adrec_recbole.quick_start`; a trained model comes back with
``from adrec_recbole import load_checkpoint`` (:mod:`adrec_recbole.inference`). This package
module itself stays import-light so that the data tools start fast: ``load_checkpoint`` is
imported (with torch and RecBole) on first use.
"""
__version__ = "0.1.0"
__all__ = ["load_checkpoint"]


def __getattr__(name):
    if name == "load_checkpoint":
        from adrec_recbole.inference import load_checkpoint

        return load_checkpoint
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
