"""Command-line flags as RecBole users write them, in both forms: ``--key=value`` and ``--key value``.

RecBole's scripts read their own options with argparse and leave every other argument to
``Config``, which keeps ``--key=value`` only and drops anything else with a warning ("command line
args [...] will not be used in RecBole"): ``--data_path ../x`` ran on ``dataset/`` instead. Here
each argument is accounted for (:func:`parse_command_line`): the script's options and the common
settings through argparse (so ``--help`` lists them), any other setting as ``--key=value`` or
``--key value``; a stray word, a flag without its value or a malformed name stops with one line
(:class:`FlagError`, printed as ``error: ...``, exit code 2). The settings go to the run path as its
``config_dict`` (RecBole converts their values as it converts its own flags: ``--topk [10]`` is a
list), and whether each NAME exists is checked once RecBole's configuration is built
(:func:`adrec_recbole.config_check.check_setting_names`).

Import-light (argparse only): ``--help`` answers at once.
"""
import argparse
import re
import sys

#: settings that mean True when given without a value (``--resume``)
SWITCHES = ("resume", "trust_checkpoint", "show_progress", "reproducibility", "use_gpu", "download")

#: the settings ``--help`` lists: (name, metavar, help)
COMMON_SETTINGS = (
    ("data_path", "DIR", "folder holding the dataset's folder (default: dataset/ in the working directory)"),
    ("epochs", "N", "training epochs (default: 300, with early stopping after stopping_step=10)"),
    ("gpu_id", "IDS", "GPU(s) to use, e.g. 0 or 0,1 (default: 0; the CPU when there is none or --use_gpu=False)"),
    ("seed", "N", "random seed (default: 2020)"),
    ("learning_rate", "LR", "learning rate"),
    ("train_batch_size", "N", "training batch size"),
    ("checkpoint_dir", "DIR", "where run folders go (default: saved/ in the working directory)"),
    ("result_file", "FILE", "write the result JSON here (default: result.json in the run's folder)"),
    ("plm_cache_dir", "DIR", "cache of item-text vectors (default: $ADREC_CACHE_DIR or ~/.cache/adrec_recbole)"),
    ("show_progress", "BOOL", "progress bars (default: on a terminal, off in CI and when output goes to a file)"),
    ("state", "LEVEL", "log level: INFO (default), WARNING, ERROR"),
    ("trust_checkpoint", "BOOL", "load checkpoints that need unpickling (runs their code: trusted files only)"),
)

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class FlagError(ValueError):
    """A command-line argument that cannot be used, in one line."""


class OneLineParser(argparse.ArgumentParser):
    """argparse with RecBole's flag spelling (no abbreviations: ``--data`` is not ``--dataset``)
    whose errors are one line, ``error: ...``, exit code 2, as the run path's."""

    def __init__(self, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(**kwargs)

    def error(self, message):
        fail(message)


def fail(message):
    """Print ``error: message`` on stderr and exit with code 2."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def parse_bool(text):
    """``True``/``False`` (also 1/0, yes/no), as RecBole's flags spell them."""
    value = str(text).strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise argparse.ArgumentTypeError(f"expected True or False, got {text!r}")
    return value in ("true", "1", "yes")


class _Setting(argparse.Action):
    """Stores a common setting's value; a second, different value is an error (RecBole's rule)."""

    def __call__(self, parser, namespace, value, option_string=None):
        previous = getattr(namespace, self.dest, None)
        if previous is not None and previous != value:
            raise FlagError(f"{option_string} is given twice, with {previous!r} and {value!r}")
        setattr(namespace, self.dest, value)


def add_common_settings(parser, title="common settings (any RecBole or ADRec setting works the same way)"):
    """List :data:`COMMON_SETTINGS` in ``--help``; their values stay strings, as RecBole's flags."""
    group = parser.add_argument_group(title)
    for name, metavar, text in COMMON_SETTINGS:
        switch = {"nargs": "?", "const": "True"} if name in SWITCHES else {}
        group.add_argument(f"--{name}", dest=f"setting:{name}", metavar=metavar, default=argparse.SUPPRESS, help=text,
                           action=_Setting, **switch)
    return group


def parse_settings(arguments):
    """``{name: raw value}`` from ``--key=value`` and ``--key value`` arguments, in order."""
    settings = {}
    index = 0
    while index < len(arguments):
        argument = arguments[index]
        if not argument.startswith("--") or argument == "--":
            raise FlagError(f"unexpected argument {argument!r}: settings are written --name=value or --name value")
        name, equals, value = argument[2:].partition("=")
        if not equals:
            following = arguments[index + 1] if index + 1 < len(arguments) else None
            if following is not None and not following.startswith("--"):
                value, index = following, index + 1
            elif name in SWITCHES:
                value = "True"
            else:
                raise FlagError(f"--{name} needs a value: --{name}=VALUE or --{name} VALUE")
        if not _NAME.match(name):
            hint = f" (--{name.replace('-', '_')}?)" if _NAME.match(name.replace("-", "_")) else ""
            raise FlagError(f"--{name}: not a setting name{hint}; settings are written with underscores, "
                            "as in the yaml files")
        if name in settings and settings[name] != value:
            raise FlagError(f"--{name} is given twice, with {settings[name]!r} and {value!r}")
        settings[name] = value
        index += 1
    return settings


def parse_command_line(parser, argv):
    """``(options, settings)``: the parser's own options (a namespace) and every setting given, as
    ``{name: raw string}`` (the common settings listed by :func:`add_common_settings` included)."""
    options, rest = parser.parse_known_args(argv)
    settings = {}
    for dest, value in list(vars(options).items()):
        if dest.startswith("setting:"):
            settings[dest.split(":", 1)[1]] = value
            delattr(options, dest)
    for name, value in parse_settings(rest).items():
        if name in settings and settings[name] != value:
            raise FlagError(f"--{name} is given twice, with {settings[name]!r} and {value!r}")
        settings[name] = value
    return options, settings
