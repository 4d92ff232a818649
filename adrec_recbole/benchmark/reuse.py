"""Runs that need not run again: records and checkpoints a planned run can take over.

All of them have the planned run's row, seed and settings (its fingerprint) and sit beside its
record; only the code version may differ. :func:`finished` is the record to reuse instead of
running (its own, else one of a code version verified equivalent,
:mod:`adrec_recbole.benchmark.equivalence`, or of any version with ``--reuse_any_code``);
:func:`adopt_equivalent_checkpoints` lets an interrupted run of an equivalent version continue
under this one; :func:`remove_superseded_failures` removes the failed records a finished run
makes obsolete.
"""
import glob
import os
from pathlib import Path

from adrec_recbole.benchmark.equivalence import equivalent_versions, load_equivalences
from adrec_recbole.benchmark.records import RECORD_FORMAT, read_json


def _same_settings(planned):
    """Records of the planned run's row, seed and settings, any code version: ``[(path, record)]``."""
    found = []
    pattern = os.path.join(glob.escape(str(planned.record_path.parent)), glob.escape(planned.prefix) + "-*.json")
    for path in glob.glob(pattern):
        if path.endswith((".spec.json", ".result.json")):
            continue
        record = read_json(path)
        if record and record.get("fingerprint") == planned.fingerprint:
            found.append((Path(path), record))
    return found


def finished(planned, reuse_any_code=False):
    """The record to reuse for this run, or None: its own if it finished (same code version), else
    the newest finished record of the same settings whose code version was verified equivalent
    (:mod:`adrec_recbole.benchmark.equivalence`); with ``reuse_any_code``, of any code version."""
    record = read_json(planned.record_path)
    if record and record.get("status") == "ok" and record.get("format") == RECORD_FORMAT:
        return record
    out_root = planned.record_path.parents[2]  # OUT/DATASET/runs/RECORD
    equivalents = equivalent_versions(load_equivalences(out_root), planned.model, planned.code_version)
    done = [record for _, record in _same_settings(planned)
            if record.get("status") == "ok" and record.get("format") == RECORD_FORMAT
            and (reuse_any_code or record.get("code_version") in equivalents)]
    return max(done, key=lambda record: record.get("finished") or "", default=None)


def adopt_equivalent_checkpoints(planned):
    """Let an interrupted run of a verified-equivalent code version continue under this one: its
    checkpoint folder (``runs/checkpoints/{label}-seed{seed}-{fingerprint}-{version}``) is renamed
    to this run's, so that the worker resumes it. The version adopted, or None."""
    folder = planned.record_path.parent / "checkpoints"
    target = folder / planned.stem
    if target.exists():
        return None
    equivalents = equivalent_versions(load_equivalences(planned.record_path.parents[2]), planned.model,
                                      planned.code_version) - {planned.code_version}
    for version in sorted(equivalents):
        source = folder / f"{planned.prefix}-{version}"
        if source.is_dir():
            source.rename(target)
            return version
    return None


def remove_superseded_failures(planned):
    """Remove the failed records of the planned run's settings (any code version), now that it has
    finished."""
    for path, other in _same_settings(planned):
        if path != planned.record_path and other.get("status") == "failed":
            path.unlink(missing_ok=True)
