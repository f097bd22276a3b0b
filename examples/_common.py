"""The preamble every example shares: fastnn from a source checkout, --quick, quiet warnings."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

try:
    import fastnn
except ImportError:  # a source checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import fastnn

__all__ = ["fastnn", "quick_default", "parser", "run"]


def quick_default() -> bool:
    """--quick's default: on when the environment sets FASTNN_EXAMPLE_QUICK (as CI does)."""
    return os.environ.get("FASTNN_EXAMPLE_QUICK", "") not in ("", "0")


def parser(description, quick_help="tiny run for CI"):
    """The examples' command line: defaults shown in --help, and --quick."""
    p = argparse.ArgumentParser(description=description,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--quick", action="store_true", default=quick_default(),
                   help=f"{quick_help} (also: env FASTNN_EXAMPLE_QUICK=1)")
    return p


def run(main):
    """Run an example's main() as a script: no backend-fallback warning; exit with its code."""
    warnings.filterwarnings("ignore", message="fastnn: using the", category=RuntimeWarning)
    sys.exit(main())
