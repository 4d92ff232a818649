"""Benchmark ADRec against RecBole's models: ``python -m adrec_recbole.benchmark``.

Rows are models (--models) and labelled variants (--variant LABEL=MODEL:A.yaml[,B.yaml]: a model
plus extra yaml, shown and averaged as its own row). Every run goes through
adrec_recbole.quick_start.run (as run_recbole.py) in its own process, with
properties/overall.yaml + properties/model/<Model>.yaml + --config_files + the variant's files.
One small JSON record per run goes to <out>/<dataset>/runs/ and is meant to be COMMITTED: it holds
the settings, the data's content hash, the code version (git commit of the code the row depends
on) and the results. Running the same command again - later, or on another machine after
`git pull` - skips every run that has a finished record of the current code version, resumes
interrupted runs from their last epoch, and redoes a row's runs after its code changed (old
records stay, shown on their own lines). The report (README.md, runs.csv, summary.csv,
paired.csv, cost.csv, anchors.csv, chart.png in <out>/<dataset>/) is rebuilt from the records
alone after every run, or by --report_only.

Examples::

  python -m adrec_recbole.benchmark --dataset Scientific --data_path ../shared/datasets --models ADRec,SASRec,GRU4Rec,BERT4Rec,FDSA,Pop --seeds 3 --jobs 2 --threads 1 --out results/
  python -m adrec_recbole.benchmark --dataset Scientific --data_path ../shared/datasets --models ADRec-paper-frozen --variant ADRec-paper-frozen=ADRec:properties/ADRec-paper.yaml,properties/ADRec-paper-frozen-minilm.yaml --seeds 3 --out results/
  python -m adrec_recbole.benchmark --dataset Scientific --data_path ../shared/datasets --models SASRec,Pop --seeds 2 --epochs 1 --out /tmp/quick/
  python -m adrec_recbole.benchmark --dataset Scientific --out results/ --report_only
  python -m adrec_recbole.benchmark --dataset Scientific --out results/ --carry_checkpoints
  python -m adrec_recbole.data import --format lcrec --src ../shared/datasets/Games --dataset Games --out dataset/
  python -m adrec_recbole.benchmark --dataset Games --data_path dataset/ --seeds 3 --out results/
"""
import argparse
import shlex
import signal
import sys

from adrec_recbole.benchmark.compare import (
    DEFAULT_MODELS, BenchmarkError, Settings, parse_seeds, parse_variants, run_benchmark, user_yaml,
)
from adrec_recbole.benchmark import carry, report
from adrec_recbole.benchmark.planning import ARITHMETICS


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m adrec_recbole.benchmark", description=__doc__.split("Examples::")[0].strip(),
        epilog="examples:" + __doc__.split("Examples::")[1], formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--dataset", "-d", required=True, help="dataset name (folder under --data_path)")
    parser.add_argument("--models", "-m", default=None,
                        help="comma-separated rows: ADRec and/or RecBole model names, and --variant labels "
                             f"(default: {','.join(DEFAULT_MODELS)}); every --variant label not named here is "
                             "appended")
    parser.add_argument("--variant", "--variants", dest="variants", action="append", default=[],
                        metavar="LABEL=MODEL:YAML[,YAML]",
                        help="a labelled row: MODEL with these extra yaml files (after --config_files), e.g. "
                             "ADRec-paper=ADRec:properties/ADRec-paper.yaml; repeat, or separate with ';'. "
                             "The label names the row and its records")
    parser.add_argument("--seeds", default="3",
                        help="a count N < 1000 (seeds 2020 .. 2020+N-1) or a list of seeds, comma-separated (default: %(default)s)")
    parser.add_argument("--out", default="results/", help="output root; the report goes to OUT/DATASET/ (default: %(default)s)")
    parser.add_argument("--data_path", default="dataset/",
                        help="data root holding DATASET/ (canonical or UniSRec layout; default: %(default)s)")
    parser.add_argument("--config_files", action="append", default=[], metavar="YAML",
                        help="extra yaml for ALL rows, after the project's own (space/comma-separated or repeated)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="override the number of epochs (quick looks; such runs are kept apart from full ones)")
    parser.add_argument("--threads", type=int, default=1, help="torch/OpenMP threads per run (default: %(default)s)")
    parser.add_argument("--jobs", "-j", type=int, default=1,
                        help="runs at once, each in its own process with --threads threads; on a 2-core machine "
                             "--jobs 2 --threads 1 (default: %(default)s)")
    parser.add_argument("--arithmetic", choices=ARITHMETICS, default="avx2",
                        help="avx2: every run computes as an AVX2 CPU would, so that records made on x86 machines "
                             "with and without AVX-512 agree to the last digit (no slower here); native: the CPU's "
                             "own instruction set (default: %(default)s; README, 'Reproducibility on CPU')")
    parser.add_argument("--reuse_any_code", action="store_true",
                        help="skip runs with a finished record of the same settings made by ANY code version "
                             "(default: only by the current one, so that code changes redo the affected rows)")
    parser.add_argument("--force", action="store_true",
                        help="run again even runs that finished before (their records are replaced)")
    parser.add_argument("--keep_checkpoints", action="store_true",
                        help="keep each run's best checkpoint under OUT/DATASET/runs/checkpoints/ (default: deleted)")
    parser.add_argument("--report_only", action="store_true",
                        help="rebuild the report from the records in OUT/DATASET/runs/ alone; run nothing, "
                             "need no data (works on a fresh clone)")
    parser.add_argument("--carry_checkpoints", action="store_true",
                        help="copy what each unfinished run needs to resume (last.pth, best.pth, run.log) to "
                             "OUT/DATASET/carried/ (git-ignored), the one folder to copy to another machine: its "
                             "benchmark restores it and resumes the run from its last epoch instead of epoch 0; "
                             "run nothing (safe while a benchmark runs: checkpoints are replaced atomically)")
    return parser


def settings_from(args, argv):
    config_files = [user_yaml(path) for value in args.config_files for path in value.replace(",", " ").split()]
    variants = parse_variants(args.variants)
    if args.models is None:
        models = list(DEFAULT_MODELS)
    else:
        models = [model.strip() for model in args.models.split(",") if model.strip()]
    if len(set(models)) != len(models):
        raise BenchmarkError(f"--models {args.models!r} names a row twice")
    return Settings(
        dataset=args.dataset, models=models, seeds=parse_seeds(args.seeds), out=args.out,
        data_path=args.data_path, config_files=config_files, epochs=args.epochs, threads=args.threads,
        force=args.force, keep_checkpoints=args.keep_checkpoints, variants=variants, jobs=args.jobs,
        reuse_any_code=args.reuse_any_code, arithmetic=args.arithmetic,
        command="python -m adrec_recbole.benchmark " + " ".join(shlex.quote(arg) for arg in argv),
    )


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    # SIGTERM (kill, a job scheduler's time limit) stops the benchmark as Ctrl-C does, and SIGINT
    # works even where a background start (`nohup ... &`) made the shell ignore it.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        settings = settings_from(args, argv)
        if args.report_only:
            if not settings.runs_dir.is_dir():
                raise BenchmarkError(f"no run records: {settings.runs_dir} does not exist (check --out and --dataset)")
            paths = report.write_report(settings.folder, settings.dataset)
            print(f"report: {paths['markdown']}")
            return
        if args.carry_checkpoints:
            if not settings.runs_dir.is_dir():
                raise BenchmarkError(f"no runs: {settings.runs_dir} does not exist (check --out and --dataset)")
            carry.pack(settings.folder)
            return
        records = run_benchmark(settings)
    except BenchmarkError as error:
        sys.exit(f"error: {error}")
    except KeyboardInterrupt:
        sys.exit(130)
    if any(record is None or record.get("status") != "ok" for record in records):
        sys.exit(1)


if __name__ == "__main__":
    main()
