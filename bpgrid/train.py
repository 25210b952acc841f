"""Train one cell: ``python -m bpgrid.train [overrides]``; ends with the result as one JSON line.

Exits 0 when the cell is done or diverged (a result), 1 when it failed.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import hydra
from omegaconf import DictConfig

from bpgrid.cell import run_cell
from bpgrid.config import ConfigError, validate
from bpgrid.tracking import prepare_store

CONF = str(Path(__file__).resolve().parent.parent / "conf")


@hydra.main(config_path=CONF, config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        validate(cfg)
    except ConfigError as err:
        print(f"bpgrid: bad config: {err}", file=sys.stderr)
        sys.exit(2)
    prepare_store(cfg.tracking.uri)
    result = run_cell(cfg)
    print(json.dumps(asdict(result)), flush=True)
    if result.status == "failed":
        sys.exit(1)


if __name__ == "__main__":
    main()
