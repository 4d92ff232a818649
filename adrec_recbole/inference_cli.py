"""What the after-training commands (``evaluate``, ``recommend``, ``export``) share: the arguments
that name a checkpoint, loading it, and bad input reported as one ``error: ...`` line with exit
code 2 (the run path's :class:`~adrec_recbole.quick_start.RunError` pattern). Torch and RecBole
are imported only once the arguments are parsed, so ``--help`` answers at once."""
import argparse
import logging
import sys


def checkpoint_parser(prog, description):
    """An argument parser with the checkpoint arguments every command takes."""
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True,
                        help="a model checkpoint: best.pth of a run folder "
                             "(saved/<Model>-<Dataset>-seed<seed>-<hash>/)")
    parser.add_argument("--data_path", default=None,
                        help="data root holding the dataset folder, if the data moved since training "
                             "(default: the path stored in the checkpoint)")
    parser.add_argument("--model", default=None, help="refuse a checkpoint of any other model")
    parser.add_argument("--dataset", default=None, help="refuse a checkpoint of any other dataset")
    parser.add_argument("--trust_checkpoint", action="store_true",
                        help="load a checkpoint that needs arbitrary unpickling (one written by RecBole alone or "
                             "an earlier version): that runs code from the file, so only for files you trust")
    parser.add_argument("--gpu_id", default=None, help="RecBole's gpu_id (default: the checkpoint's; '' for the CPU)")
    parser.add_argument("--plm_cache_dir", default=None,
                        help="ADRec's cache of item vectors (default: the checkpoint's)")
    parser.add_argument("--verbose", action="store_true", help="show RecBole's and the loader's log lines")
    return parser


def load(args):
    """The :class:`~adrec_recbole.inference.LoadedCheckpoint` the arguments name."""
    from adrec_recbole.inference import load_checkpoint

    overrides = {key: getattr(args, key) for key in ("gpu_id", "plm_cache_dir") if getattr(args, key) is not None}
    return load_checkpoint(args.checkpoint, data_path=args.data_path, trust_checkpoint=args.trust_checkpoint,
                           config_dict=overrides, model=args.model, dataset=args.dataset)


def run_command(command, parser, argv=None):
    """Parse ``argv``, run ``command(args)``; bad input ends in one ``error:`` line and exit code 2."""
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    from adrec_recbole.quick_start import RunError

    try:
        command(args)
    except RunError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: no output file was written", file=sys.stderr)
        sys.exit(130)
