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

from bpgrid.report.__main__ import bad_grid

EVERY_SECONDS = 5.0
USAGE = "usage: python -m bpgrid.status +grid=NAME [overrides] [--watch [--every=SECONDS]]"
HELP = """\
Shows a grid's cells as their files and the tracking store say they are now, launching nothing:
counts by state (done, diverged, failed, running, queued, stale, stopped, missing), a dataset x
column table (one table cell holds its LR scales and seeds: the state when they share it, else
`k/n done` and the other states), the running cells with their epoch and best val error so far,
the failed cells with their log and error, and stale claims (leases whose owner is gone).
Overrides are the sweep's (dataset=mnist seed=0,1,2, cells_dir=..., tracking.uri=...).
--watch redraws it every 5 seconds (--every=SECONDS) until Ctrl-C."""


def _options(argv: list[str]) -> tuple[list[str], bool, float] | str:
    """The overrides, --watch and its period; or what is wrong with the command line."""
    if any(a in ("-h", "--help") for a in argv):
        return f"{USAGE}\n{HELP}"
    watch, every, overrides = False, EVERY_SECONDS, []
    for arg in argv:
        if arg == "--watch":
            watch = True
        elif arg.startswith("--every="):
            try:
                every = float(arg.split("=", 1)[1])
            except ValueError:
                every = -1.0
            if every <= 0:
                return f"bpgrid.status: --every takes a positive number of seconds\n{USAGE}"
        elif arg.startswith("-"):
            return f"bpgrid.status: unknown option {arg}\n{USAGE}"
        else:
            overrides.append(arg)
    problem = bad_grid(overrides, "bpgrid.status", USAGE)
    return problem if problem else (overrides, watch, every)


def main(argv: list[str]) -> int:
    options = _options(argv)
    if isinstance(options, str):
        print(options, file=sys.stderr)
        return 2
    overrides, watch, every = options
    from hydra.errors import HydraException  # imported here: --help does not wait for them
    from omegaconf.errors import OmegaConfBaseException

    from bpgrid.config import ConfigError
    from bpgrid.report.cells import compose_grid
    try:
        grid = compose_grid(overrides, lambda text: print(f"status: {text}", file=sys.stderr))
        _show(grid, watch, every)
    except (ConfigError, HydraException, OmegaConfBaseException) as err:
        cause = f"\n{err.__cause__}" if err.__cause__ else ""  # Hydra's says which key
        print(f"bpgrid.status: {err}{cause}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C ends a watch
        return 0
    return 0


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
