"""Train and evaluate ADRec or any RecBole model on a dataset of the canonical layout.

    python run_recbole.py --model=ADRec --dataset=Scientific
    python run_recbole.py --model=SASRec --dataset=Scientific --epochs=5
    python run_recbole.py --model=ADRec --dataset=Scientific --config_files=properties/ADRec-paper.yaml
    python run_recbole.py --model=ADRec --dataset=Scientific --resume     # continue an interrupted run
    python run_recbole.py --model=ADRec --dataset=Scientific --nproc=2    # 2 processes (GPUs, or CPU with gloo)

Any other ``--key=value`` overrides a RecBole/ADRec setting, as in RecBole's own script. Each
run keeps its checkpoints, log and results in its own folder under ``checkpoint_dir``
(``saved/``), named from model, dataset, seed and a hash of the settings (or ``--run_name``).
"""
import argparse
import sys


def _bool(text):
    value = text.strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise argparse.ArgumentTypeError(f"expected True or False, got {text!r}")
    return value in ("true", "1", "yes")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", "-m", default="ADRec", help="ADRec or a RecBole model name")
    parser.add_argument("--dataset", "-d", default="Scientific", help="dataset folder name under data_path")
    parser.add_argument("--config_files", default=None, help="space-separated extra yaml files")
    parser.add_argument("--resume", nargs="?", const=True, default=None, type=_bool,
                        help="continue this run from its last checkpoint (--resume=False: start it over)")
    parser.add_argument("--run_name", default=None, help="name of the run's folder under checkpoint_dir")
    args, _ = parser.parse_known_args()
    sys.argv = [arg for arg in sys.argv if arg != "--resume"]  # RecBole would warn it "will not be used"
    from adrec_recbole.quick_start import RunError, run  # torch and RecBole: only once --help is past

    config_files = args.config_files.split() if args.config_files else None
    overrides = {key: value for key, value in (("resume", args.resume), ("run_name", args.run_name)) if value is not None}
    try:
        result = run(args.model, args.dataset, config_file_list=config_files, config_dict=overrides)
    except RunError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: run the same command with --resume to continue from the last epoch", file=sys.stderr)
        sys.exit(130)
    print(f"test: {result['test_result']}")
    print(f"results: {result['result_file']}")


if __name__ == "__main__":
    main()
