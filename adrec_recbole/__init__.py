"""adrec-recbole: ADRec (KBS 2025) as a RecBole plugin model.

Import the model from :mod:`adrec_recbole.model` and the run path from
:mod:`adrec_recbole.quick_start`; this package module itself stays import-light so that the
data tools start fast.
"""
import os

__version__ = "0.1.0"

# Reproducible CPU runs with several threads. Unless told otherwise, Intel MKL (torch's CPU BLAS)
# picks kernels by the memory alignment of each call's arrays, which differs between runs, so
# two runs with the same seed drifted apart in the last digits of the loss and then in the
# metrics (measured on a 600-user subset of Scientific, 2 threads). MKL's conditional numerical
# reproducibility with the best kernels of this CPU fixes that. It must be set before MKL starts
# (importing this package before torch does it); a user's own MKL_CBWR wins.
os.environ.setdefault("MKL_CBWR", "AUTO")
