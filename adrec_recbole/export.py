"""Export a saved model's item vectors and its test sequences' vectors (``.npy`` with id maps)
and a FAISS index of the items for serving; checks that FAISS's top-k equals the model's exact
top-k for every test row.

    python -m adrec_recbole.export --checkpoint saved/.../best.pth --out vectors/

Files (see :mod:`adrec_recbole.vectors`): items.npy + items.tsv, sequences.npy + sequences.tsv,
items.faiss, export.json (written last). Needs ``pip install faiss-cpu``.
"""
import json

from adrec_recbole.inference_cli import checkpoint_parser, load, run_command


def main(argv=None):
    parser = checkpoint_parser("python -m adrec_recbole.export", __doc__)
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--topk", type=int, default=10, help="cut-off of the FAISS-versus-exact check")

    def command(args):
        from adrec_recbole.quick_start import RunError
        from adrec_recbole.vectors import import_faiss, export_vectors

        if args.topk < 1:
            raise RunError(f"--topk {args.topk}: expected an integer >= 1")
        import_faiss()  # before loading anything: a missing FAISS is one line, not a wasted load
        manifest = export_vectors(load(args), args.out, topk=args.topk)
        print(json.dumps(manifest, indent=2))

    run_command(command, parser, argv)


if __name__ == "__main__":
    main()
