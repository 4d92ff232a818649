"""Train and evaluate ADRec or any RecBole model on a dataset of the canonical layout.

    python run_recbole.py --model=ADRec --dataset=Scientific --data_path DIR
    python run_recbole.py --model=SASRec --dataset=Scientific --epochs 5
    python run_recbole.py --model=ADRec --dataset=Scientific --config_files=properties/ADRec-paper.yaml
    python run_recbole.py --model=ADRec --dataset=Scientific --resume     # continue an interrupted run
    python run_recbole.py --model=ADRec --dataset=Scientific --nproc=2    # 2 processes (GPUs, or CPU with gloo)

Any RecBole or ADRec setting is a flag, --key=value or --key value (--learning_rate 5e-4,
--topk=[10,20]); a name that is no setting of the run is an error, not ignored. --config_files
names yaml files, read from the working directory or else from the package's properties/
(properties/ADRec-paper.yaml works from any folder).

Where things go: each run keeps best.pth, last.pth, run.log and result.json in its own folder,
checkpoint_dir/<Model>-<Dataset>-seed<seed>-<hash>/ (checkpoint_dir: saved/ in the working
directory; --run_name names the folder); RecBole also writes log/<Model>/ and log_tensorboard/ in
the working directory; item-text vectors are cached in plm_cache_dir (~/.cache/adrec_recbole).
"""
import sys

from adrec_recbole.command_line import FlagError, OneLineParser, add_common_settings, fail, parse_bool, parse_command_line

#: RecBole's flags of a multi-process run, passed on when given
PROCESS_FLAGS = ("nproc", "ip", "port", "world_size", "group_offset")


def build_parser():
    """RecBole's ``run_recbole.py`` options, this project's run options, the common settings."""
    parser = OneLineParser(prog="run_recbole.py", description=__doc__)
    parser.add_argument("--model", "-m", default="ADRec", help="ADRec or a RecBole model name (default: ADRec)")
    parser.add_argument("--dataset", "-d", default="Scientific", help="dataset folder name under data_path")
    parser.add_argument("--config_files", default=None, metavar="'A.yaml B.yaml'", help="extra yaml files, space-separated")
    parser.add_argument("--resume", nargs="?", const=True, default=None, type=parse_bool, metavar="BOOL",
                        help="continue this run from its last checkpoint (--resume=False: start it over)")
    parser.add_argument("--run_name", default=None, help="name of the run's folder under checkpoint_dir")
    processes = parser.add_argument_group("several processes (RecBole's flags)")
    processes.add_argument("--nproc", type=int, default=None, help="processes on this node (default: 1)")
    processes.add_argument("--ip", default=None, help="address of the node running rank 0 (default: localhost)")
    processes.add_argument("--port", type=int, default=None,
                           help="port of rank 0 (default: a free one on a single node, else 5678)")
    processes.add_argument("--world_size", type=int, default=None, help="processes on all nodes (default: nproc)")
    processes.add_argument("--group_offset", type=int, default=None,
                           help="global rank of this node's first process (default: 0)")
    add_common_settings(parser)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        options, settings = parse_command_line(build_parser(), argv)
    except FlagError as error:
        fail(error)
    from adrec_recbole.quick_start import RunError, run  # torch and RecBole: only once --help is past

    flag_names = list(settings)  # each must be a setting of the run (a typo is an error, not ignored)
    given = ("resume", "run_name", *PROCESS_FLAGS)  # README "Multi-GPU and multi-node"
    settings.update({name: getattr(options, name) for name in given if getattr(options, name) is not None})
    config_files = options.config_files.split() if options.config_files else None
    try:
        result = run(options.model, options.dataset, config_file_list=config_files, config_dict=settings,
                     flag_names=flag_names)
    except RunError as error:
        fail(error)
    except KeyboardInterrupt:
        print("interrupted: run the same command with --resume to continue from the last epoch", file=sys.stderr)
        sys.exit(130)
    print(f"test: {result['test_result']}")
    print(f"results: {result['result_file']}")


if __name__ == "__main__":
    main()
