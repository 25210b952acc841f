"""Train one cell: ``python -m bpgrid.train [overrides]``; ends with the result as one JSON line.

Exits 0 when the cell is done or diverged (a result), 1 when it failed, 2 on a bad config, 3 when
another live owner (a sweep's worker, a SLURM job, another ``bpgrid.train``) is training the cell
(its status is then ``running``, and the message names the owner), 128 + the signal's number when
SIGINT, SIGTERM or SIGHUP stopped it (the cell resumes when the command runs again). Its MLflow
run has no parent run (a sweep's cells are its run's children).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from bpgrid.cell import run_cell
from bpgrid.config import ConfigError, to_dict, validate
from bpgrid.naming import extras, run_name
from bpgrid.shutdown import Interrupted, signals_raise
from bpgrid.tracking import prepare_store

CONF = str(Path(__file__).resolve().parent.parent / "conf")
OWNED_ELSEWHERE = 3


@hydra.main(config_path=CONF, config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        validate(cfg)
    except ConfigError as err:
        print(f"bpgrid: bad config: {err}", file=sys.stderr)
        sys.exit(2)
    with signals_raise():
        try:
            prepare_store(cfg.tracking.uri)
            c = to_dict(cfg)  # a new run is named by the overrides, as a sweep's cells are
            c["tracking"]["run_name"] = run_name(c, extras(HydraConfig.get().overrides.task))
            result = run_cell(c)
        except (Interrupted, KeyboardInterrupt) as stop:
            code = stop.exit_code if isinstance(stop, Interrupted) else 130
            print(f"bpgrid: {stop or 'interrupted'}; the cell resumes when this command runs "
                  f"again", file=sys.stderr)
            sys.exit(code)
    print(json.dumps(asdict(result)), flush=True)
    if result.status == "running":
        print(f"bpgrid: {result.error}", file=sys.stderr)
        sys.exit(OWNED_ELSEWHERE)
    if result.status == "failed":
        sys.exit(1)


if __name__ == "__main__":
    main()
