"""The README's tables of what a user can choose, rendered from the registries and ``conf/``.

``python -m bpgrid.choices`` rewrites the blocks of README.md between ``<!-- begin choices: NAME``
and ``<!-- end choices: NAME -->``; ``--check`` only says whether they are current (the tests do).
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import MISSING, fields
from pathlib import Path

from omegaconf import OmegaConf

from bpgrid.data.registry import DATASETS, SOURCES
from bpgrid.feedback import RULES
from bpgrid.losses import LOSSES

ROOT = Path(__file__).resolve().parent.parent
CONF, README = ROOT / "conf", ROOT / "README.md"
BLOCK = re.compile(r"(<!-- begin choices: (\w+) [^\n]*-->\n)(.*?)(<!-- end choices: \2 -->)",
                   re.DOTALL)


def _names(names) -> str:
    return ", ".join(f"`{n}`" for n in names)


def _options(conf: Path, group: str) -> list[str]:
    """The options of a config group: its yaml files."""
    return sorted(path.stem for path in (conf / group).glob("*.yaml"))


def _default_model(conf: Path, dataset: str) -> str:
    """The model a dataset's yaml picks (its ``override /model@_global_.model`` default)."""
    defaults = OmegaConf.load(conf / "dataset" / f"{dataset}.yaml").get("defaults", [])
    return next(v for d in defaults for k, v in d.items() if k.startswith("override /model"))


def choices_table(conf: Path = CONF) -> str:
    """The config groups and their choices."""
    methods = {m: OmegaConf.load(conf / "method" / f"{m}.yaml").method
               for m in _options(conf, "method")}
    rows = [
        ("dataset", _names(DATASETS) + " (see Datasets)"),
        ("model", "picked by the dataset (see Datasets); " + _names(_options(conf, "model"))),
        ("method", "a table column: "
         + ", ".join(f"`{m}` ({method.label})" for m, method in methods.items())),
        ("feedback", _names(_options(conf, "feedback")) + " (see Feedback rules)"),
        ("norm", _names(_options(conf, "norm"))),
        ("optimizer", _names(_options(conf, "optimizer"))),
        ("schedule", _names(_options(conf, "schedule"))),
        ("schedule.loss", _names(LOSSES)),
    ]
    return "\n".join(["| config | choices |", "|---|---|",
                      *(f"| `{key}` | {text} |" for key, text in rows)])


def datasets_table(conf: Path = CONF) -> str:
    """Each dataset: its table label, default model, files under ``dataset.root``, source."""
    lines = ["| dataset | table row | default model | files under `dataset.root` | "
             "how to get them |", "|---|---|---|---|---|"]
    for name, d in DATASETS.items():
        files = f"`{d.layout}`" if d.layout else "–"
        lines.append(f"| `{name}` | {d.label} | `{_default_model(conf, name)}` | {files} | "
                     f"{SOURCES[d.source]} |")
    return "\n".join(lines)


def feedback_table() -> str:
    """Each feedback rule: its docstring's first line and its options with their defaults."""
    lines = ["| name | rule | options |", "|---|---|---|"]
    for name, rule in RULES.items():
        summary = (rule.__doc__ or "").strip().splitlines()[0]
        options = ", ".join(f"`{f.name}` ({f.default})" for f in fields(rule)
                            if f.default is not MISSING)
        lines.append(f"| `{name}` | {summary} | {options or '–'} |")
    return "\n".join(lines)


def tables(conf: Path = CONF) -> dict[str, str]:
    """Every generated block of the README by name."""
    return {"config": choices_table(conf), "datasets": datasets_table(conf),
            "feedback": feedback_table()}


def rewrite(text: str, blocks: dict[str, str]) -> str:
    """``text`` with each named block replaced; ValueError when the blocks found differ."""
    found = [m.group(2) for m in BLOCK.finditer(text)]
    if sorted(found) != sorted(blocks):
        raise ValueError(f"README blocks {sorted(found)} differ from the tables {sorted(blocks)}")
    return BLOCK.sub(lambda m: f"{m.group(1)}\n{blocks[m.group(2)]}\n\n{m.group(4)}", text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bpgrid.choices", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md is stale")
    parser.add_argument("--readme", type=Path, default=README)
    args = parser.parse_args(argv)
    text = args.readme.read_text()
    new = rewrite(text, tables())
    if args.check:
        if new != text:
            print(f"{args.readme}: the tables of choices are stale; run python -m "
                  "bpgrid.choices", file=sys.stderr)
        return int(new != text)
    if new != text:
        args.readme.write_text(new)
        print(f"{args.readme}: tables of choices rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
