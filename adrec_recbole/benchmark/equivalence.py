"""Code versions verified to compute the same numbers, so that run records outlive harmless changes.

A record belongs to the code version of what its numbers depend on (:mod:`records`): for
RecBole's models, the run path. Most run-path changes (a new command, a flag parser, a
multi-process launcher that a single process never enters) leave every number of a run as it
was, yet they give the run path a new version, and the benchmark would then rerun tens of
CPU-hours of baselines; reusing the old records unchecked (``--reuse_any_code``) would trust
instead of measure. This module measures: it trains each model for a few epochs with both code
versions, each from a clean git worktree of its commit, on the same data, seed and one thread,
and compares the best-validation and test metrics and every tensor of the best checkpoint bit for
bit. Only if all are identical is the pair written to ``{out}/code_equivalence.json``; from
then on the benchmark reuses a record of either version (:func:`reuse.finished`) and the
report shows them as one row under the newest version of the pair (:func:`representative`).

    python -m adrec_recbole.benchmark.equivalence --dataset Scientific --old ff88b859a4 \\
        --models Pop,SASRec,GRU4Rec,BERT4Rec,FDSA --epochs 1

``--new`` defaults to the current commit, which must have no uncommitted changes in the code
the models depend on. The evidence (metrics of both sides, number of tensors compared, command,
date, versions of python and torch) is kept in the entry. A few epochs exercise the whole path
(data, model, trainer, checkpoints, evaluation), not early stopping after many epochs: the entry
says how many epochs were compared.
"""
import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from adrec_recbole.atomic import write_json
from adrec_recbole.benchmark.planning import is_unisrec_layout
from adrec_recbole.benchmark.records import PROJECT_ROOT, data_identity, read_json

EQUIVALENCE_FILE = "code_equivalence.json"
SHOW_VERSION = "from adrec_recbole.benchmark.records import code_version; import sys; print(code_version(sys.argv[1]))"


def recorded_equivalences(out_root):
    """The verified pairs written in ``out_root``'s own file, oldest first (``[]`` if none)."""
    entries = read_json(Path(out_root) / EQUIVALENCE_FILE)
    return entries if isinstance(entries, list) else []


def load_equivalences(out_root):
    """The verified pairs of ``out_root``, then those of the project's ``results/`` not among them.
    A pair is a fact about two code versions, not about a folder: a benchmark writing to a side
    ``--out`` (another run holds ``results/{dataset}``'s lock) reuses what the project verified."""
    own = recorded_equivalences(out_root)
    return own + [entry for entry in recorded_equivalences(Path(PROJECT_ROOT) / "results") if entry not in own]


def _pairs(entries, model):
    for entry in entries:
        versions = (entry.get("models") or {}).get(model)
        if versions:
            yield versions["old"], versions["new"]


def equivalent_versions(entries, model, version):
    """Every code version of ``model`` verified (directly or through a chain) to compute what
    ``version`` computes, ``version`` included."""
    found, frontier = {version}, [version]
    while frontier:
        current = frontier.pop()
        for old, new in _pairs(entries, model):
            for one, other in ((old, new), (new, old)):
                if one == current and other not in found:
                    found.add(other)
                    frontier.append(other)
    return found


def representative(entries, model, version):
    """The version a row of ``version`` is shown under: the newest of its equivalents (the
    ``new`` side of the latest entry that reaches it), else ``version`` itself."""
    equivalents = equivalent_versions(entries, model, version)
    newest = version
    for _old, new in _pairs(entries, model):
        if new in equivalents:
            newest = new
    return newest


def _git(*args, cwd=PROJECT_ROOT):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


class Side:
    """One code version checked out in a temporary worktree."""

    def __init__(self, commit, folder):
        self.commit = _git("rev-parse", "--verify", f"{commit}^{{commit}}")
        self.folder = folder
        _git("worktree", "add", "--detach", "--force", folder, self.commit)

    def version(self, model):
        done = subprocess.run([sys.executable, "-c", SHOW_VERSION, model], cwd=self.folder, capture_output=True,
                              text=True)
        if done.returncode != 0:
            raise RuntimeError(f"commit {self.commit[:10]} has no benchmark code versions: give --old the commit a "
                               "record names as git_head")
        return done.stdout.strip()

    def train(self, model, args, work):
        """Train ``model`` for ``args.epochs`` epochs with this side's ``run_recbole.py``; its result dict."""
        result_file = os.path.join(work, f"{model}.json")
        command = [sys.executable, "run_recbole.py", f"--model={model}", f"--dataset={args.dataset}",
                   f"--data_path={os.path.abspath(args.data_path)}", f"--epochs={args.epochs}", f"--seed={args.seed}",
                   f"--checkpoint_dir={work}", f"--result_file={result_file}", "--show_progress=False"]
        if args.config_files:
            command.append("--config_files=" + " ".join(os.path.abspath(path) for path in args.config_files))
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        with open(os.path.join(work, f"{model}.log"), "w", encoding="utf-8") as log:
            done = subprocess.run(command, cwd=self.folder, env=env, stdout=log, stderr=subprocess.STDOUT)
        if done.returncode != 0:
            with open(os.path.join(work, f"{model}.log"), encoding="utf-8", errors="replace") as log:
                last = ([line.strip() for line in log if line.strip()] or ["no output"])[-1]
            raise RuntimeError(f"{model} failed at {self.commit[:10]}: {last}")
        return read_json(result_file)

    def remove(self):
        _git("worktree", "remove", "--force", self.folder)


def _best_tensors(result):
    import torch

    state = torch.load(result["checkpoint"], map_location="cpu", weights_only=True)
    return state["state_dict"]


def compare_runs(old, new):
    """The differences between two runs' metrics and best-checkpoint tensors (``[]``: identical),
    and the number of tensors compared."""
    import torch

    differences = [f"{key}: {old.get(key)} vs {new.get(key)}" for key in ("best_valid_result", "test_result", "best_epoch")
                   if old.get(key) != new.get(key)]
    old_tensors, new_tensors = _best_tensors(old), _best_tensors(new)
    if set(old_tensors) != set(new_tensors):
        differences.append(f"checkpoint keys differ: {sorted(set(old_tensors) ^ set(new_tensors))}")
    else:
        differences += [f"tensor {name} differs" for name in sorted(old_tensors)
                        if not torch.equal(old_tensors[name], new_tensors[name])]
    return differences, len(old_tensors)


def verify(args, log=print):
    """Train every model with both versions and compare; the new entry, or None if any differs."""
    models = [model.strip() for model in args.models.split(",") if model.strip()]
    entry = {"dataset": args.dataset, "data_id": data_identity(args.data_path, args.dataset), "epochs": args.epochs,
             "seed": args.seed, "threads": 1, "models": {}, "compared": {},
             "command": "python -m adrec_recbole.benchmark.equivalence " + " ".join(sys.argv[1:]),
             "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
             "python": platform.python_version()}
    identical = True
    with tempfile.TemporaryDirectory(prefix="adrec-equivalence-") as scratch:
        sides = {}
        try:
            for name, commit in (("old", args.old), ("new", args.new)):
                sides[name] = Side(commit, os.path.join(scratch, name))
            entry["commits"] = {name: side.commit for name, side in sides.items()}
            for model in models:
                versions = {name: side.version(model) for name, side in sides.items()}
                results = {}
                for name, side in sides.items():
                    log(f"{model} @ {versions[name]} ({name}): training {args.epochs} epoch(s)")
                    work = os.path.join(scratch, f"{name}-runs")
                    os.makedirs(work, exist_ok=True)
                    results[name] = side.train(model, args, work)
                differences, tensors = compare_runs(results["old"], results["new"])
                if differences:
                    identical = False
                    log(f"{model}: DIFFERENT: " + "; ".join(differences[:5]))
                else:
                    log(f"{model}: identical (metrics and {tensors} tensors of the best checkpoint)")
                entry["models"][model] = versions
                entry["compared"][model] = {"tensors": tensors, "test_result": results["new"]["test_result"],
                                            "best_valid_result": results["new"]["best_valid_result"],
                                            "identical": not differences}
        finally:
            for side in sides.values():
                side.remove()
    return entry if identical else None


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m adrec_recbole.benchmark.equivalence",
                                     description="Verify that two code versions compute identical runs and record it, "
                                                 "so the benchmark keeps the older version's records.")
    parser.add_argument("--dataset", "-d", required=True)
    parser.add_argument("--old", required=True, help="commit (or code version) the existing records were made with")
    parser.add_argument("--new", default="HEAD", help="commit to compare with (default: %(default)s, which must be clean)")
    parser.add_argument("--models", "-m", default="Pop,SASRec,GRU4Rec,BERT4Rec,FDSA")
    parser.add_argument("--epochs", type=int, default=1, help="epochs trained per model and side (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--config_files", action="append", default=[], metavar="YAML",
                        help="extra yaml for every run, as the benchmark's --config_files (repeatable)")
    parser.add_argument("--out", default="results/", help="benchmark output root (default: %(default)s)")
    parser.add_argument("--data_path", default=None,
                        help="data root holding DATASET/ in the canonical layout (default: the benchmark's copy, "
                             "OUT/DATASET/runs/data)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    canonical = os.path.join(args.out, args.dataset, "runs", "data")  # the benchmark's copy of the data
    args.data_path = args.data_path or canonical
    if not (Path(args.data_path) / args.dataset).is_dir():
        print(f"error: no dataset folder {Path(args.data_path) / args.dataset} (run the benchmark once, or give "
              "--data_path)", file=sys.stderr)
        return 2
    if is_unisrec_layout(Path(args.data_path) / args.dataset, args.dataset):
        print(f"error: {Path(args.data_path) / args.dataset} is in UniSRec's layout (no {args.dataset}.item), which "
              f"FDSA cannot read; the benchmark's records were made on its canonical copy: leave out --data_path "
              f"(default {canonical}), or make that copy with `python -m adrec_recbole.data import --format unisrec "
              f"--src {Path(args.data_path) / args.dataset} --dataset {args.dataset} --out {canonical}`",
              file=sys.stderr)
        return 2
    if args.new == "HEAD" and _git("status", "--porcelain", "--untracked-files=no", "--", "adrec_recbole",
                                   "run_recbole.py"):
        print("error: uncommitted changes in the code: commit first, so that --new names what was compared",
              file=sys.stderr)
        return 2
    try:
        entry = verify(args)
    except (subprocess.CalledProcessError, RuntimeError) as error:
        print(f"error: {getattr(error, 'stderr', None) or error}".strip(), file=sys.stderr)
        return 2
    if entry is None:
        print("not equivalent: nothing recorded; the benchmark reruns these models with the new code")
        return 1
    target = Path(args.out) / EQUIVALENCE_FILE
    write_json(target, recorded_equivalences(args.out) + [entry])
    print(f"equivalent: recorded in {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
