"""``python -m adrec_recbole.tune``: see :mod:`adrec_recbole.tune`."""
import sys

if __name__ == "__main__":
    # Run the function of the importable module, not of __main__: Ray pickles __main__'s
    # functions by value, the module's by reference (workers import it).
    from adrec_recbole.tune.cli import main

    sys.exit(main())
