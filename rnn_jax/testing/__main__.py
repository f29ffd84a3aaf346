"""``python -m rnn_jax.testing CELL [--kwargs JSON]``: ``check_cell`` with one line per property.

CELL is a registered name (``lstm``) or ``package.module:ClassName`` (importable, e.g. on
``PYTHONPATH``). Exit status 0 when every property holds, 1 when one fails, 2 for a bad CELL.
"""

import argparse
import json
import sys
import time

from rnn_jax.cells import get_cell_class
from rnn_jax.testing import check_cell


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rnn_jax.testing", description=__doc__)
    parser.add_argument("cell", help="a registered name or package.module:ClassName")
    parser.add_argument(
        "--kwargs", default="{}", help='constructor arguments as JSON, e.g. {"reset_after": false}'
    )
    args = parser.parse_args(argv)
    try:
        cell_class = get_cell_class(args.cell)
        kwargs = json.loads(args.kwargs)
        if not isinstance(kwargs, dict):
            raise ValueError(f"--kwargs={args.kwargs!r}: a JSON object, e.g. '{{\"features\": 8}}'")
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    def report(name: str, passed: bool, detail: str, seconds: float) -> None:
        print(f"{'PASS' if passed else 'FAIL'}  {name}: {detail} ({seconds:.1f} s)", flush=True)

    start = time.perf_counter()
    try:
        names = check_cell(cell_class, report=report, **kwargs)
    except AssertionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - start
    print(f"{cell_class.__name__}: all {len(names)} properties hold ({seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
