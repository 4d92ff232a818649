"""Search hyperparameters of ADRec or any RecBole model, with RecBole's run_hyper.py flags.

    python run_hyper.py --model=ADRec --dataset=Scientific --params_file=hyper.test --max_evals=16 --epochs=5
    python run_hyper.py --config_files=my.yaml --params_file=my.test --tool=Ray --max_evals=32 --output_file=my.result

RecBole's flags: --config_files (yaml applied to every trial), --params_file (the search space in
RecBole's format; default hyper.test, ADRec's space, found in the package from any folder),
--output_file (RecBole's result file: each trial's parameters, valid and test results),
--display_file (an HTML plot of the search), --tool Hyperopt|Ray (default Hyperopt, as
RecBole's). Any other RecBole or ADRec setting applies to every trial, --key=value or
--key value, as in run_recbole.py. The search itself is the project's tuner (python -m
adrec_recbole.tune, whose options below work here too): results.md/.csv, best_config.yaml and one
folder per trial go to --out. RecBole's own run_hyper.py cannot run ADRec (it looks models up by
name in RecBole's package).
"""
import sys

from adrec_recbole.command_line import FlagError, OneLineParser, fail, parse_command_line


def build_parser():
    """RecBole's ``run_hyper.py`` flags over the tuner's options (:mod:`adrec_recbole.tune.cli`)."""
    from adrec_recbole.tune.options import add_search_options

    parser = OneLineParser(prog="run_hyper.py", description=__doc__)
    add_search_options(parser, params_file="hyper.test", tool="hyperopt")
    parser.add_argument("--output_file", default="hyper_example.result",
                        help="RecBole's result file (default: %(default)s, as RecBole's)")
    parser.add_argument("--display_file", default=None, help="HTML plot of the valid score by trial (plotly)")
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if any(arg in ("-h", "--help") for arg in argv):
        build_parser().print_help()
        return 0
    from adrec_recbole.quick_start import RunError
    from adrec_recbole.tune.cli import print_summary, run_search
    from adrec_recbole.tune.report import write_display_file, write_recbole_results

    try:
        options, settings = parse_command_line(build_parser(), argv)
        outcome = run_search(options, settings)
    except (FlagError, RunError) as error:
        fail(error)
    print(f"RecBole's result file: {write_recbole_results(outcome['rows'], options.output_file)}")
    if options.display_file:
        print(f"plot: {write_display_file(outcome['rows'], outcome['settings'], options.display_file)}")
    return print_summary(outcome)


if __name__ == "__main__":
    sys.exit(main())
