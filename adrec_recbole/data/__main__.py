"""Command line of the data pipeline: ``python -m adrec_recbole.data {download,import,subsample,stats}``.

Examples::

  python -m adrec_recbole.data download --dataset Arts --out dataset/
  python -m adrec_recbole.data import --format unisrec --src ../shared/datasets/Scientific --dataset Scientific --out dataset/
  python -m adrec_recbole.data import --format lcrec --src ../shared/datasets/Games --dataset Games --out dataset/
  python -m adrec_recbole.data subsample --dataset Games --data_path dataset/ --users 0.2 --name GamesU20 --out dataset/
  python -m adrec_recbole.data stats --dataset Scientific --data_path dataset/
"""
import argparse
import json
import sys
from pathlib import Path

from adrec_recbole.data.amazon import AMAZON_2018, BASE_URL_ENV, DEFAULT_BASE_URL, prepare
from adrec_recbole.data.errors import DataFormatError, DatasetNotFoundError, DownloadError
from adrec_recbole.data.importers import import_lcrec, import_unisrec
from adrec_recbole.data.stats import dataset_stats
from adrec_recbole.data.subsample import subsample_users


def build_parser():
    """The argument parser with its four subcommands."""
    parser = argparse.ArgumentParser(
        prog="python -m adrec_recbole.data",
        description="Download, import and summarise datasets in the canonical layout of adrec-recbole.",
        epilog="examples:" + __doc__.split("Examples::")[1], formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    download = commands.add_parser("download", help="download an Amazon 2018 category and convert it")
    download.add_argument("--dataset", required=True, choices=list(AMAZON_2018))
    download.add_argument("--out", default="dataset/", help="data root (RecBole's data_path)")
    download.add_argument(
        "--base_url", default=None,
        help=f"mirror of the Amazon 2018 files (default: ${BASE_URL_ENV}, else {DEFAULT_BASE_URL})",
    )
    download.add_argument(
        "--force", action="store_true", help="download the raw files again and rebuild an existing dataset folder",
    )

    imports = commands.add_parser("import", help="import a UniSRec- or LC-Rec-format folder")
    imports.add_argument("--format", required=True, choices=["unisrec", "lcrec"])
    imports.add_argument("--src", required=True, help="folder with the source files (plain or .gz)")
    imports.add_argument("--dataset", required=True, help="dataset name (file name prefix)")
    imports.add_argument("--out", default="dataset/", help="data root (RecBole's data_path)")
    imports.add_argument(
        "--titles", default=None,
        help="lcrec only: TSV with a header naming 'asin' and 'title' columns "
             "(default: {src}/{dataset}.lcrec_item_titles.tsv[.gz])",
    )
    imports.add_argument("--force", action="store_true", help="rebuild an existing dataset folder")

    subsample = commands.add_parser("subsample", help="a random share of a dataset's users, their rows and items")
    subsample.add_argument("--dataset", required=True, help="source dataset (canonical layout)")
    subsample.add_argument("--data_path", default="dataset/", help="data root of the source (default: %(default)s)")
    subsample.add_argument("--users", type=float, required=True, help="share of users kept, e.g. 0.2")
    subsample.add_argument("--seed", type=int, default=0, help="draw of the users (default: %(default)s)")
    subsample.add_argument("--name", required=True, help="name of the new dataset")
    subsample.add_argument("--out", default="dataset/", help="data root of the new dataset (default: %(default)s)")
    subsample.add_argument("--force", action="store_true", help="rebuild an existing dataset folder")

    stats = commands.add_parser("stats", help="print a dataset's statistics as JSON")
    stats.add_argument("--dataset", required=True)
    stats.add_argument("--data_path", default="dataset/", help="data root (RecBole's data_path)")
    return parser


def main(argv=None):
    """Run one subcommand; user-facing failures print one ``error: ...`` line and exit with status 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "import" and args.format == "unisrec" and args.titles:
        parser.error("--titles applies to --format lcrec only")
    try:
        if args.command == "download":
            prepare(args.dataset, args.out, args.base_url, args.force)
        elif args.command == "import" and args.format == "unisrec":
            import_unisrec(args.src, args.dataset, args.out, args.force)
        elif args.command == "import":
            import_lcrec(args.src, args.dataset, args.out, args.titles, args.force)
        elif args.command == "subsample":
            subsample_users(args.data_path, args.dataset, args.users, args.seed, args.name, args.out, args.force)
        else:
            print(json.dumps(dataset_stats(Path(args.data_path) / args.dataset, args.dataset), indent=2))
    except (DataFormatError, DatasetNotFoundError, DownloadError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
