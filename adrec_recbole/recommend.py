"""Top-k items of a saved model, in the dataset's external ids (ASINs), with titles and scores.

    python -m adrec_recbole.recommend --checkpoint saved/.../best.pth --user A2RNCQ2FF0SKB6 --topk 10
    python -m adrec_recbole.recommend --checkpoint saved/.../best.pth --history B00X,B00Y --exclude_seen
    python -m adrec_recbole.recommend --checkpoint saved/.../best.pth --history B00X --new_items new.tsv
    python -m adrec_recbole.recommend --checkpoint saved/.../best.pth --all_users --out recs.csv

A user is recommended for from everything known about them (their test history and its
target); ``--history`` is a comma-separated list of item ids, oldest first. ``--new_items`` is a
file of ``id<TAB>text`` lines: ADRec encodes these items from their text and ranks them with the
catalogue, without retraining. ``--all_users`` writes ``user_id,rank,item_id,score,title`` rows
(CSV; JSON lines with ``--format json``) for every user, in batches, with a progress bar; the
file appears only when complete.
"""
import csv
import json
import sys

from adrec_recbole.inference_cli import checkpoint_parser, load, run_command

TITLE_WIDTH = 70


def print_table(ranked):
    print(f"{'rank':>4}  {'item_id':<14} {'score':>8}  title")
    for entry in ranked:
        title = entry["title"] if len(entry["title"]) <= TITLE_WIDTH else entry["title"][:TITLE_WIDTH - 3] + "..."
        print(f"{entry['rank']:>4}  {entry['item_id']:<14} {entry['score']:>8.4f}  {title}")


def write_all_users(recommender, args):
    from adrec_recbole.atomic import _replace_with

    def write(temporary):
        with open(temporary, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle) if args.format == "table" else None
            if writer:
                writer.writerow(["user_id", "rank", "item_id", "score", "title"])
            for user_id, ranked in recommender.recommend_all_users(args.topk, args.exclude_seen):
                for entry in ranked:
                    if writer:
                        writer.writerow([user_id, entry["rank"], entry["item_id"], f"{entry['score']:.6f}",
                                         entry["title"]])
                    else:
                        handle.write(json.dumps({"user_id": user_id, **entry}) + "\n")

    _replace_with(args.out, write, ".tmp")
    print(f"recommendations: {args.out}", file=sys.stderr)


def main(argv=None):
    parser = checkpoint_parser("python -m adrec_recbole.recommend", __doc__)
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="an external user id (e.g. a reviewer id)")
    who.add_argument("--history", help="comma-separated external item ids, oldest first")
    who.add_argument("--all_users", action="store_true", help="every user with a test row, into --out")
    parser.add_argument("--topk", type=int, default=10)
    parser.add_argument("--exclude_seen", action="store_true", help="leave out the items already in the user's "
                        "rows (--user, --all_users) or in --history")
    parser.add_argument("--new_items",
                        help="file of id<TAB>text lines: items outside the catalogue to rank too (ADRec)")
    parser.add_argument("--format", choices=("table", "json"), default="table",
                        help="table (with --all_users: CSV) or json (with --all_users: JSON lines)")
    parser.add_argument("--out", help="output file of --all_users")

    def command(args):
        from adrec_recbole.quick_start import RunError
        from adrec_recbole.recommendation import Recommender, read_new_items

        if args.topk < 1:
            raise RunError(f"--topk {args.topk}: expected an integer >= 1")
        if args.all_users != bool(args.out):
            raise RunError("--out goes with --all_users (and --all_users needs --out)")
        new_items = read_new_items(args.new_items) if args.new_items else None
        history = None if args.history is None else [item.strip() for item in args.history.split(",") if item.strip()]
        if history is not None and not history:
            raise RunError("--history is empty: give comma-separated item ids")
        recommender = Recommender(load(args), new_items)
        if args.all_users:
            write_all_users(recommender, args)
            return
        ranked = recommender.recommend(user=args.user, history=history, topk=args.topk, exclude_seen=args.exclude_seen)
        if args.format == "json":
            print(json.dumps(ranked, indent=2))
        else:
            print_table(ranked)

    run_command(command, parser, argv)


if __name__ == "__main__":
    main()
