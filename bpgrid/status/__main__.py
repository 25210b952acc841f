"""``python -m bpgrid.status +grid=NAME [overrides] [--watch [--every=SECONDS]]``: a grid's state.

Launches nothing. Composes the grid's cells as the sweep does (the same overrides pick the same
cells, so a SLURM sweep left running can be looked at from the login node), reads their files
and the tracking store, and prints the counts by state, the dataset x column table the report
has, the running cells with their best error so far, the failed cells with their logs and
errors, and the stale claims. ``--watch`` redraws it in place until Ctrl-C. A bad command line,
override or grid is one message and exit status 2.
"""

from __future__ import annotations

import sys
import time

from bpgrid.cli import Command, run

EVERY_SECONDS = 5.0
COMMAND = Command("bpgrid.status", "+grid=NAME [overrides] [--watch [--every=SECONDS]]", """\
Shows a grid's cells as their files and the tracking store say they are now, launching nothing:
counts by state (done, diverged, failed, running, queued, stale, stopped, missing), a dataset x
column table (one table cell holds its LR scales and seeds: the state when they share it, else
`k/n done` and the other states), the running cells with their epoch and best val error so far,
the failed cells with their log and error, and stale claims (leases whose owner is gone).
Overrides are the sweep's (dataset=mnist seed=0,1,2, cells_dir=..., tracking.uri=...).
--watch redraws it every 5 seconds (--every=SECONDS) until Ctrl-C.""",
                  options=("--watch", "--every"))


class BadOption(ValueError):
    """A bad value of one of status's own options."""


def _status(argv: list[str]) -> int:
    from bpgrid.report.cells import compose_grid

    watch, every = "--watch" in argv, EVERY_SECONDS
    for arg in argv:
        if arg.startswith("--every"):
            try:
                every = float(arg.partition("=")[2])
            except ValueError:
                every = -1.0
            if every <= 0:
                raise BadOption("--every takes a positive number of seconds: --every=5")
    overrides = [a for a in argv if not a.startswith("-")]
    grid = compose_grid(overrides, lambda text: print(f"status: {text}", file=sys.stderr))
    try:
        _show(grid, watch, every)
    except KeyboardInterrupt:  # Ctrl-C ends a watch
        pass
    return 0


def main(argv: list[str]) -> int:
    return run(COMMAND, _status, argv, errors=lambda: (BadOption,))


def _show(grid, watch: bool, every: float) -> None:
    from rich.console import Console
    from rich.live import Live
    from rich.measure import Measurement

    from bpgrid.status.gather import look
    from bpgrid.status.render import render
    console = Console(highlight=False)
    if not watch or not console.is_terminal:  # a log gets one status after another
        while True:
            shown = render(look(grid))
            if not console.is_terminal:  # a file is as wide as the table, not 80 columns
                wide = console.options.update_width(10_000)
                console.width = max(80, Measurement.get(console, wide, shown).maximum)
            console.print(shown)
            if not watch:
                return
            time.sleep(every)
    with Live(render(look(grid)), console=console, auto_refresh=False) as live:
        while True:
            time.sleep(every)
            live.update(render(look(grid)), refresh=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
