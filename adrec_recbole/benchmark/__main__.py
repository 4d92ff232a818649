"""Benchmark ADRec against RecBole's models: ``python -m adrec_recbole.benchmark``.

Examples::

  python -m adrec_recbole.benchmark --dataset Scientific --data_path ../shared/datasets --models ADRec,SASRec,GRU4Rec,BERT4Rec,FDSA,Pop --seeds 3 --out results/
  python -m adrec_recbole.benchmark --dataset Scientific --data_path ../shared/datasets --models SASRec,Pop --seeds 2 --epochs 1 --out /tmp/quick/
  python -m adrec_recbole.data import --format lcrec --src ../shared/datasets/Games --dataset Games --out dataset/
  python -m adrec_recbole.benchmark --dataset Games --data_path dataset/ --seeds 3 --out results/
  python -m adrec_recbole.benchmark --dataset Games --data_path dataset/ --seeds 3 --out results/ --report_only

Every run goes through adrec_recbole.quick_start.run (as run_recbole.py) in its own process,
with properties/overall.yaml + properties/model/<Model>.yaml + the --config_files. Records go to
<out>/<dataset>/runs/ (one JSON per run); finished runs are skipped when the same command runs
again, so an interrupted benchmark resumes. The report (runs.csv, summary.csv, anchors.csv,
README.md, chart.png) is rewritten in <out>/<dataset>/ after every run.
"""
import argparse
import shlex
import sys

from adrec_recbole.benchmark.compare import (
    DEFAULT_MODELS, BenchmarkError, Settings, parse_seeds, plan, resolve_data_root, run_benchmark,
)
from adrec_recbole.benchmark import report


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m adrec_recbole.benchmark", description=__doc__.split("Examples::")[0].strip(),
        epilog="examples:" + __doc__.split("Examples::")[1], formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--dataset", "-d", required=True, help="dataset name (folder under --data_path)")
    parser.add_argument("--models", "-m", default=",".join(DEFAULT_MODELS),
                        help="comma-separated: ADRec and/or RecBole model names (default: %(default)s)")
    parser.add_argument("--seeds", default="3",
                        help="a count N < 1000 (seeds 2020 .. 2020+N-1) or a list of seeds, comma-separated (default: %(default)s)")
    parser.add_argument("--out", default="results/", help="output root; the report goes to OUT/DATASET/ (default: %(default)s)")
    parser.add_argument("--data_path", default="dataset/",
                        help="data root holding DATASET/ (canonical or UniSRec layout; default: %(default)s)")
    parser.add_argument("--config_files", action="append", default=[], metavar="YAML",
                        help="extra yaml for ALL models, after the project's own (space/comma-separated or repeated)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="override the number of epochs (quick looks; such runs are kept apart from full ones)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="run again even runs that finished before")
    parser.add_argument("--keep_checkpoints", action="store_true",
                        help="keep each run's best checkpoint under OUT/DATASET/runs/checkpoints/ (default: deleted)")
    parser.add_argument("--report_only", action="store_true", help="rebuild the report from the records; run nothing")
    return parser


def settings_from(args, argv):
    config_files = [path for value in args.config_files for path in value.replace(",", " ").split()]
    models = [model.strip() for model in args.models.split(",") if model.strip()]
    if len(set(models)) != len(models):
        raise BenchmarkError(f"--models {args.models!r} names a model twice")
    return Settings(
        dataset=args.dataset, models=models, seeds=parse_seeds(args.seeds), out=args.out,
        data_path=args.data_path, config_files=config_files, epochs=args.epochs, threads=args.threads,
        force=args.force, keep_checkpoints=args.keep_checkpoints,
        command="python -m adrec_recbole.benchmark " + " ".join(shlex.quote(arg) for arg in argv),
    )


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from(args, argv)
        if args.report_only:
            data_root = resolve_data_root(settings)
            paths = report.write_report(settings, plan(settings, data_root), data_root)
            print(f"report: {paths['markdown']}")
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
