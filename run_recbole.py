"""Train and evaluate ADRec or any RecBole model on a dataset of the canonical layout.

    python run_recbole.py --model=ADRec --dataset=Scientific
    python run_recbole.py --model=SASRec --dataset=Scientific --epochs=5
    python run_recbole.py --model=ADRec --dataset=Scientific --config_files=properties/ADRec-paper.yaml

Any other ``--key=value`` overrides a RecBole/ADRec setting, as in RecBole's own script.
"""
import argparse
import sys

from adrec_recbole.quick_start import RunError, run


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", "-m", default="ADRec", help="ADRec or a RecBole model name")
    parser.add_argument("--dataset", "-d", default="Scientific", help="dataset folder name under data_path")
    parser.add_argument("--config_files", default=None, help="space-separated extra yaml files")
    args, _ = parser.parse_known_args()
    config_files = args.config_files.split() if args.config_files else None
    try:
        result = run(args.model, args.dataset, config_file_list=config_files)
    except RunError as error:
        sys.exit(f"error: {error}")
    print(f"test: {result['test_result']}")
    print(f"results: {result['result_file']}")


if __name__ == "__main__":
    main()
