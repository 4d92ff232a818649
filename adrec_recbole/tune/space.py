"""The search space: a file in RecBole's format, one parameter per line, ``name type value``.

Types (as RecBole's ``HyperTuning``): ``choice [v1,v2]``, ``uniform lo,hi``, ``loguniform lo,hi``
(bounds are NATURAL LOG exponents: ``-9.21,-5.30`` means 1e-4..5e-3) and ``quniform lo,hi,q``
(floats: use choice for integers). :func:`ray_space` gives Ray Tune's equivalent.
"""
import ast
import math
import os

from adrec_recbole.quick_start import RunError

KINDS = ("choice", "uniform", "loguniform", "quniform")


class Param:
    """One line of a search-space file: ``name kind args`` (args: choices or numeric bounds)."""

    def __init__(self, name, kind, args, line):
        self.name, self.kind, self.args, self.line = name, kind, args, line

    def describe(self):
        if self.kind == "choice":
            return f"{self.name}: choice of {len(self.args)} {self.args}"
        if self.kind == "loguniform":
            low, high = (math.exp(bound) for bound in self.args)
            return f"{self.name}: loguniform e^{self.args[0]:g}..e^{self.args[1]:g} = {low:.3g}..{high:.3g}"
        return f"{self.name}: {self.kind} {','.join(f'{arg:g}' for arg in self.args)}"


def read_space(path):
    """The parameters of a RecBole search-space file, checked line by line.

    Lines are read as RecBole's ``HyperTuning._build_space_from_file`` reads them (fields split on
    single spaces, the value is the rest of the line with its spaces removed), so a file accepted
    here means the same to RecBole. Stricter: a non-blank line that RecBole would skip, an unknown
    type, a malformed value or a repeated name is an error naming the line.
    """
    if not os.path.isfile(path):  # the command line resolves a bare name first (cli.resolve_space_file)
        raise RunError(f"search space file not found: {path}")
    params = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            where = f"{path}, line {number}"
            if not line.strip():
                continue
            fields = line.strip().split(" ")
            if len(fields) < 3 or "" in fields[:2]:
                raise RunError(f"{where}: expected `name type value` separated by single spaces, got {line.strip()!r}")
            name, kind, value = fields[0], fields[1], "".join(fields[2:])
            if kind not in KINDS:
                raise RunError(f"{where}: unknown type {kind!r} (use {', '.join(KINDS)})")
            if name in params:
                raise RunError(f"{where}: {name} is already defined on line {params[name].line}")
            params[name] = Param(name, kind, _parse_value(kind, value, where), number)
    if not params:
        raise RunError(f"{path}: no parameters")
    return list(params.values())


def _parse_value(kind, value, where):
    if kind == "choice":
        try:
            choices = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise RunError(f"{where}: choice needs a Python list of literals, got {value!r}") from None
        if not isinstance(choices, (list, tuple)) or not choices:
            raise RunError(f"{where}: choice needs a non-empty list, got {value!r}")
        return list(choices)
    count = 3 if kind == "quniform" else 2
    try:
        numbers = [float(part) for part in value.split(",")]
    except ValueError:
        numbers = []
    if len(numbers) != count:
        form = "lo,hi,q" if kind == "quniform" else "lo,hi"
        raise RunError(f"{where}: {kind} needs {form} (numbers), got {value!r}")
    if numbers[0] > numbers[1] or (kind == "quniform" and numbers[2] <= 0):
        raise RunError(f"{where}: {kind} bounds out of order or q <= 0: {value!r}")
    return numbers


def grid_size(params):
    """How many combinations the ``choice`` parameters make (what exhaustive search runs)."""
    return math.prod(len(param.args) for param in params if param.kind == "choice")


def ray_space(params, grid=False):
    """Ray Tune's search space for ``params``; ``grid`` turns every choice into a grid search.

    RecBole's loguniform bounds are natural-log exponents; Ray's are the values themselves.
    """
    from ray import tune

    space = {}
    for param in params:
        if param.kind == "choice":
            space[param.name] = tune.grid_search(param.args) if grid else tune.choice(param.args)
        elif param.kind == "uniform":
            space[param.name] = tune.uniform(*param.args)
        elif param.kind == "loguniform":
            space[param.name] = tune.loguniform(math.exp(param.args[0]), math.exp(param.args[1]))
        else:
            space[param.name] = tune.quniform(*param.args)
    return space


def plain_value(value):
    """Built-in Python value of ``value`` (numpy scalars and arrays, tuples) for YAML/JSON/RecBole."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [plain_value(item) for item in value]
    if isinstance(value, dict):
        return {key: plain_value(item) for key, item in value.items()}
    return value
