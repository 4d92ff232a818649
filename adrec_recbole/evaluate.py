"""Evaluate a saved model without retraining: its valid and test metrics (equal to what its
training run reported) and the test metrics of the cold-start rows (targets never in training).

    python -m adrec_recbole.evaluate --checkpoint saved/ADRec-Scientific-seed2020-1a2b3c4d/best.pth
    python -m adrec_recbole.evaluate --checkpoint saved/SASRec-Scientific-seed2020-5e6f7a8b/best.pth --format json
"""
import json

from adrec_recbole.inference_cli import checkpoint_parser, load, run_command


def table(report):
    """The report of :func:`adrec_recbole.inference.evaluate` as aligned text lines."""
    metrics = list(report["test_result"])
    parts = [(f"valid: {report['valid_rows']} rows", report["valid_result"]),
             (f"test: {report['test_rows']} rows", report["test_result"])]
    for name in ("cold_start", "zero_shot"):
        if name in report:
            subset = report[name]
            label = "targets never in training" if name == "cold_start" else "targets hidden from training"
            parts.append((f"test, {label}: {subset['rows']} rows, {subset['items']} items", subset["result"] or {}))
    width = max(len(label) for label, _ in parts) + 2
    lines = [f"{report['model']} on {report['dataset']} ({report['checkpoint']})",
             f"{'':<{width}}" + "".join(f"{metric:>11}" for metric in metrics)]
    for label, result in parts:
        lines.append(f"{label:<{width}}" + "".join(f"{result[m]:>11.4f}" if m in result else f"{'-':>11}"
                                                  for m in metrics))
    return lines


def main(argv=None):
    parser = checkpoint_parser("python -m adrec_recbole.evaluate", __doc__)
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.add_argument("--show_progress", action="store_true", help="a progress bar per evaluation pass")

    def command(args):
        from adrec_recbole.inference import evaluate

        report = evaluate(load(args), show_progress=args.show_progress)
        print(json.dumps(report, indent=2) if args.format == "json" else "\n".join(table(report)))

    run_command(command, parser, argv)


if __name__ == "__main__":
    main()
