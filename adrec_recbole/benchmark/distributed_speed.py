r"""Several processes against several threads on one machine: the same ADRec run (defaults,
``--epochs`` epochs) as ``--nproc=P`` processes of 1 thread, and as 1 process of P threads.

    python -m adrec_recbole.benchmark.distributed_speed --dataset Scientific \
        --data_path ../shared/datasets --epochs 3 --processes 2 --out results/speed

Each arm is ``run_recbole.py`` in its own subprocess (one after the other, never at once), in
its own run folder under ``--work``, deleted first. The PLM vectors are
computed once before either arm, so neither pays for them. From each run's ``run.log`` and
``result.json``: seconds per epoch of training and of validation, the validation NDCG@10 after
every epoch, the test metrics at the best epoch, the command's wall time and rank 0's peak RSS,
and the machine's load average before and after (other jobs slow both arms).

Writes ``distributed_speed_<Dataset>.json`` and ``.md`` to ``--out`` and prints the Markdown.
"""
import argparse
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import time

from adrec_recbole.atomic import write_json
from adrec_recbole.benchmark.report import _write_text
from adrec_recbole.benchmark.worker import git_commit
from adrec_recbole.model import ADRec
from adrec_recbole.benchmark.records import PROJECT_ROOT
from adrec_recbole.quick_start import build_config, build_dataset, prepare_data

TRAINING = re.compile(r"epoch (\d+) training \[time: ([\d.]+)s")
VALIDATION = re.compile(r"epoch (\d+) evaluating \[time: ([\d.]+)s, valid_score: ([\d.]+)\]")


def arms(processes):
    """(label, extra flags, threads per process) of the two arms."""
    return [
        (f"{processes} processes x 1 thread", [f"--nproc={processes}"], 1),
        (f"1 process x {processes} threads", [], processes),
    ]


def warm_plm_cache(args):
    """Compute (or find) the frozen PLM vectors both arms read."""
    config = build_config("ADRec", args.dataset, args.config_files.split() if args.config_files else None, {
        "data_path": args.data_path, "plm_cache_dir": args.plm_cache_dir, "state": "ERROR"})
    prepare_data(config)
    ADRec(config, build_dataset(config))


def run_arm(args, label, flags, threads):
    run_name = re.sub(r"\W+", "-", label)
    folder = os.path.join(args.work, run_name)
    shutil.rmtree(folder, ignore_errors=True)
    command = [sys.executable, "run_recbole.py", "--model=ADRec",
               f"--dataset={args.dataset}", f"--data_path={args.data_path}", f"--epochs={args.epochs}",
               f"--checkpoint_dir={args.work}", f"--plm_cache_dir={args.plm_cache_dir}", f"--run_name={run_name}",
               *([f"--config_files={args.config_files}"] if args.config_files else []), *flags]
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    load_before, start = os.getloadavg()[0], time.time()
    completed = subprocess.run(command, cwd=PROJECT_ROOT, env=environment, capture_output=True, text=True)
    wall = time.time() - start
    if completed.returncode != 0:
        raise SystemExit(f"error: {label} failed:\n{completed.stderr[-3000:]}")
    with open(os.path.join(folder, "run.log"), encoding="utf-8") as handle:
        log = handle.read()
    with open(os.path.join(folder, "result.json"), encoding="utf-8") as handle:
        result = json.load(handle)
    training = [float(seconds) for _, seconds in TRAINING.findall(log)]
    validation = VALIDATION.findall(log)
    return {
        "arm": label, "processes": result["world_size"], "threads_per_process": threads,
        "command": f"OMP_NUM_THREADS={threads} MKL_NUM_THREADS={threads} python " + shlex.join(command[1:]),
        "train_seconds_per_epoch": round(sum(training) / len(training), 1),
        "valid_seconds_per_epoch": round(sum(float(seconds) for _, seconds, _ in validation) / len(validation), 1),
        "seconds_per_epoch": result["seconds_per_epoch"],
        "valid_ndcg10_by_epoch": [float(score) for _, _, score in validation],
        "best_epoch": result["best_epoch"], "test_result": result["test_result"],
        "wall_seconds": round(wall, 1), "peak_rss_mb_rank0": result["peak_rss_mb"],
        "load_average_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def markdown(report):
    lines = [
        f"# Processes against threads, ADRec on {report['dataset']}, {report['epochs']} epochs",
        "",
        f"{report['date']}, commit {report['commit']}, {report['machine']}; produced by `{report['command']}`",
        "",
        "| arm | train s/epoch | valid s/epoch | s/epoch (train + valid) | valid NDCG@10 by epoch "
        "| test NDCG@10 / Recall@10 (best epoch) | wall s | peak RSS MB (rank 0) | load average before / after |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["arms"]:
        test = row["test_result"]
        lines.append(
            f"| {row['arm']} | {row['train_seconds_per_epoch']} | {row['valid_seconds_per_epoch']} "
            f"| {row['seconds_per_epoch']} | {', '.join(f'{s:.4f}' for s in row['valid_ndcg10_by_epoch'])} "
            f"| {test['ndcg@10']:.4f} / {test['recall@10']:.4f} ({row['best_epoch']}) | {row['wall_seconds']} "
            f"| {row['peak_rss_mb_rank0']} | {' / '.join(map(str, row['load_average_before_after']))} |"
        )
    lines += ["", "Commands:", ""] + [f"    {row['command']}" for row in report["arms"]]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="Scientific")
    parser.add_argument("--data_path", default="dataset/")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--processes", type=int, default=2, help="processes of one arm = threads of the other")
    parser.add_argument("--work", default="saved/distributed_speed", help="scratch folder of the two runs")
    parser.add_argument("--plm_cache_dir", default="cache/")
    parser.add_argument("--config_files", default=None, help="space-separated extra yaml files for both arms")
    parser.add_argument("--out", default="results/speed")
    args = parser.parse_args()
    invocation = "python -m adrec_recbole.benchmark.distributed_speed " + shlex.join(sys.argv[1:])
    sys.argv = sys.argv[:1]  # RecBole's Config would read this script's flags as its own
    warm_plm_cache(args)
    report = {
        "dataset": args.dataset, "epochs": args.epochs, "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "commit": git_commit(), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "command": invocation,
        "arms": [run_arm(args, *arm) for arm in arms(args.processes)],
    }
    stem = os.path.join(args.out, f"distributed_speed_{args.dataset}")
    write_json(stem + ".json", report)
    _write_text(stem + ".md", markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
