"""Interrupted runs moved to another machine: ``--carry_checkpoints``.

A run's checkpoints live in ``runs/checkpoints/{stem}/`` (``stem`` = the record's name), among
locks, logs and spec files: a machine that has only the repository and its records starts every
interrupted run again from epoch 0. :func:`pack` copies, for every run that has not finished,
what resuming needs — its run folder's ``last.pth`` (the state at the start of the next epoch),
``best.pth`` (the weights the test is run with; its optimizer state is left out) and ``run.log``
— to ``{dataset}/carried/{stem}/{run folder}/``, one folder to copy to the other machine (it is
git-ignored like every checkpoint). :func:`restore`, called by the benchmark before it starts a
run, copies a carried folder back to ``runs/checkpoints/{stem}/`` when that is missing; the
worker then resumes it as if it had never left. A carried copy of a verified-equivalent code
version is taken too (:mod:`adrec_recbole.benchmark.reuse` then renames it to this version).
:func:`drop_finished` removes the carried copies of runs that have since finished.

Each copy is written to a temporary folder and renamed into place, so an interrupted pack
leaves the previous copy whole. Resuming checks the run's settings hash
(:func:`adrec_recbole.run_folder.settings_hash`), which includes the data folder's absolute
path: a carried run resumes in a checkout at the same path as the one that packed it.
"""
import re
import shutil
from pathlib import Path

from adrec_recbole.benchmark.equivalence import equivalent_versions, load_equivalences
from adrec_recbole.benchmark.records import RECORD_FORMAT, is_record_file, read_json

CARRIED = "carried"
CARRIED_FILES = ("last.pth", "best.pth", "run.log")
STEM = re.compile(r"^(?P<prefix>.+-seed\d+-[0-9a-f]{8})-(?P<version>.+)$")  # records.PlannedRun.stem


def _finished_prefixes(runs_dir):
    """``{label}-seed{seed}-{fingerprint}`` of every run with an ``ok`` record, of any code version
    (a run resumed under a verified-equivalent version finishes under another stem)."""
    prefixes = set()
    for path in Path(runs_dir).glob("*.json"):
        match = STEM.match(path.stem)
        record = read_json(path) if match and is_record_file(path) else None
        if record and record.get("status") == "ok" and record.get("format") == RECORD_FORMAT:
            prefixes.add(match["prefix"])
    return prefixes


def _finished(stem, prefixes):
    match = STEM.match(stem)
    return bool(match) and match["prefix"] in prefixes


def _copy_to_carry(source, target):
    """Copy a run folder's file; ``best.pth`` without its optimizer state (a third of its size and
    not read again: the test and every later use load its weights; resuming reads ``last.pth``)."""
    if source.name != "best.pth":
        shutil.copy2(source, target)
        return
    import torch  # only here: the benchmark's own process stays light

    best = torch.load(source, map_location="cpu", weights_only=True)
    best.pop("optimizer", None)
    torch.save(best, target)


def _replace_folder(source_files, target, copy=shutil.copy2):
    """Copy ``{relative path: source file}`` into ``target`` (a folder) with ``copy``, replacing it whole."""
    temporary = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(temporary, ignore_errors=True)
    for relative, source in source_files.items():
        (temporary / relative).parent.mkdir(parents=True, exist_ok=True)
        copy(source, temporary / relative)
    if target.exists():
        shutil.rmtree(target)
    temporary.rename(target)


def pack(folder, log=print):
    """Copy the resumable state of every unfinished run of ``folder`` (OUT/DATASET) to
    ``folder/carried/``; return ``[(stem, bytes)]`` of the runs packed."""
    folder = Path(folder)
    runs_dir, carried = folder / "runs", folder / CARRIED
    packed, done = [], _finished_prefixes(runs_dir)
    for checkpoint_dir in sorted((runs_dir / "checkpoints").glob("*")):
        if not checkpoint_dir.is_dir() or _finished(checkpoint_dir.name, done):
            continue
        files = {
            path.relative_to(checkpoint_dir): path
            for run in sorted(checkpoint_dir.iterdir()) if (run / "last.pth").is_file()
            for path in (run / name for name in CARRIED_FILES) if path.is_file()
        }
        if not files:  # stopped before its first epoch ended: nothing to resume
            continue
        carried.mkdir(parents=True, exist_ok=True)
        _replace_folder(files, carried / checkpoint_dir.name, copy=_copy_to_carry)
        size = sum(path.stat().st_size for path in (carried / checkpoint_dir.name).rglob("*") if path.is_file())
        packed.append((checkpoint_dir.name, size))
        log(f"carried: {checkpoint_dir.name} ({size / 1e6:.1f} MB) -> {carried / checkpoint_dir.name}")
    removed = drop_finished(folder)
    for stem in removed:
        log(f"carried: {stem} finished; its carried copy is removed")
    if not packed:
        log(f"carried: no unfinished run with a checkpoint under {runs_dir / 'checkpoints'}")
    return packed


def restore(planned):
    """Before a run starts: if it has no checkpoint folder here (of its own code version or a
    verified-equivalent one), copy its carried one back, preferring its own version. The
    version restored, or None."""
    runs_dir = planned.record_path.parent
    carried = runs_dir.parent / CARRIED
    equivalents = equivalent_versions(load_equivalences(runs_dir.parents[1]), planned.model, planned.code_version)
    stems = [f"{planned.prefix}-{version}" for version in [planned.code_version] + sorted(equivalents - {planned.code_version})]
    if not carried.is_dir() or any((runs_dir / "checkpoints" / stem).exists() for stem in stems):
        return None  # a local checkpoint is at least as recent as the carried copy
    for stem in stems:
        source = carried / stem
        if source.is_dir():
            files = {path.relative_to(source): path for path in source.rglob("*") if path.is_file()}
            (runs_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
            _replace_folder(files, runs_dir / "checkpoints" / stem)
            return STEM.match(stem)["version"]
    return None


def drop_finished(folder):
    """Remove the carried copies of runs that now have an ``ok`` record (of any code version);
    return their stems."""
    folder = Path(folder)
    removed, done = [], _finished_prefixes(folder / "runs")
    for source in sorted((folder / CARRIED).glob("*")):
        if source.is_dir() and _finished(source.name, done):
            shutil.rmtree(source)
            removed.append(source.name)
    return removed
