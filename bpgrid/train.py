"""Train one cell: ``python -m bpgrid.train [overrides]``; ends with the result as one JSON line.

Exits 0 when the cell is done or diverged (a result), 1 when it failed, 2 on a bad command line,
config or missing dataset (nothing started), 3 when another live owner (a sweep's worker, a SLURM
job, another ``bpgrid.train``) is training the cell (its status is then ``running``, and the
message names the owner), 128 + the signal's number when SIGINT, SIGTERM or SIGHUP stopped it
(the cell resumes when the command runs again). Its MLflow run has no parent run (a sweep's
cells are its run's children).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict

from bpgrid.cli import Command, run

OWNED_ELSEWHERE = 3
COMMAND = Command("bpgrid.train", "[+grid=NAME] [overrides]", """\
Trains one cell (dataset x model x feedback x norm x optimizer x schedule x lr_scale x seed) and
prints its result as one JSON line: python -m bpgrid.train dataset=mnist method=usf_bn_bm
lr_scale=10. +grid=NAME takes a grid's settings (schedule, tracking) for the cell. Exit status:
0 done or diverged, 1 failed, 2 bad command line, override or missing dataset (nothing started),
3 another process owns the cell, 128 + the signal's number when stopped (it resumes).""",
                  needs_grid=False)


def main(argv: list[str] | None = None) -> int:
    return run(COMMAND, _train, argv)


def _train(argv: list[str]) -> int:
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from bpgrid import CONF
    from bpgrid.cell import run_cell
    from bpgrid.config import ConfigError, to_dict, validate
    from bpgrid.data.missing import check_data
    from bpgrid.naming import extras, run_name
    from bpgrid.shutdown import Interrupted, signals_raise
    from bpgrid.tracking import prepare_store

    for override in OverridesParser.create().parse_overrides(argv):
        if override.is_sweep_override():
            raise ConfigError(f"{override.input_line} gives several values, and bpgrid.train runs "
                              f"one cell; python -m bpgrid.sweep +grid=NAME runs them all")
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", argv)
    validate(cfg)
    check_data([cfg.dataset])
    with signals_raise():
        try:
            prepare_store(cfg.tracking.uri)
            c = to_dict(cfg)  # a new run is named by the overrides, as a sweep's cells are
            c["tracking"]["run_name"] = run_name(c, extras(argv))
            result = run_cell(c)
        except (Interrupted, KeyboardInterrupt) as stop:
            code = stop.exit_code if isinstance(stop, Interrupted) else 130
            print(f"bpgrid: {stop or 'interrupted'}; the cell resumes when this command runs "
                  f"again", file=sys.stderr)
            return code
    print(json.dumps(asdict(result)), flush=True)
    if result.status == "running":
        print(f"bpgrid: {result.error}", file=sys.stderr)
        return OWNED_ELSEWHERE
    return 1 if result.status == "failed" else 0


if __name__ == "__main__":
    sys.exit(main())
