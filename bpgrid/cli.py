"""What bpgrid's commands share: ``--help``, the grid's name, and bad input as one message.

A command (train, sweep, report, status) is a function of its overrides that returns an exit
status. ``run`` gives it the command line: ``-h``/``--help`` prints the usage and help on stdout
and exits 0; any other option, a missing or unknown grid, and every error that bad input raises
(an override Hydra cannot read or apply, a value bpgrid refuses, a missing dataset, and the
errors the command names) is one message on stderr, prefixed with the command's name, and exit
status 2, before any work starts. Hydra's messages of several lines become one line that names
the bad override and what is allowed. Nothing heavy is imported before it is needed, so
``--help`` answers at once.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bpgrid import CONF

BAD_INPUT = 2
README = "README.md"


@dataclass(frozen=True)
class Command:
    """A command line: its module, the forms it takes, and what ``--help`` adds."""

    name: str  # the module: bpgrid.sweep
    forms: str  # what follows python -m <name>: +grid=NAME [overrides]
    about: str  # the help's text after the usage
    needs_grid: bool = True
    options: tuple[str, ...] = ()  # the flags it takes (--watch, --every=S), passed on to it

    def usage(self) -> str:
        names = f"; grids: {', '.join(grids())}" if "+grid=NAME" in self.forms else ""
        return f"usage: python -m {self.name} {self.forms}{names}"

    def help(self) -> str:
        return f"{self.usage()}\n{self.about}\nSee {README} for every config key and command."


def grids() -> list[str]:
    return sorted(p.stem for p in (CONF / "grid").glob("*.yaml"))


def grid_name(argv: Sequence[str]) -> str | None:
    names = [a.split("=", 1)[1] for a in argv if a.startswith(("+grid=", "grid="))]
    return names[-1] if names else None


Errors = Callable[[], tuple[type[BaseException], ...]]


def run(command: Command, body: Callable[[list[str]], int], argv: Sequence[str] | None = None,
        errors: Errors = tuple) -> int:
    """``body(argv)``'s exit status; for --help, bad options or bad input, what the module
    docstring says. ``errors()`` are the command's own errors of bad input (a function, so that
    they are imported only when an error is to be told)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        print(command.help())
        return 0
    problem = _bad_command_line(command, argv)
    if problem is None:
        try:
            return body(argv)
        except Exception as err:  # noqa: BLE001 - bad input is told; anything else is raised
            problem = explain(err, errors())
            if problem is None:
                raise
    print(f"{command.name}: {problem}", file=sys.stderr)
    return BAD_INPUT


def _bad_command_line(command: Command, argv: list[str]) -> str | None:
    """What is wrong with the command line itself, before anything is composed, or None."""
    option = next((a for a in argv if a.startswith("-")
                   and a.split("=", 1)[0] not in command.options), None)
    if option is not None:
        takes = " and ".join(("key=value overrides", *command.options))
        return f"unknown option {option}: {command.name} takes {takes} only (--help shows them)"
    name = grid_name(argv)
    if name is None:
        return f"no grid given\n{command.usage()}" if command.needs_grid else None
    if name not in grids():
        return (f"no grid {name!r} in {CONF / 'grid'}{_did_you_mean(name, grids())}; grids: "
                f"{', '.join(grids())}")
    return None


def explain(err: BaseException, errors: tuple[type[BaseException], ...] = ()) -> str | None:
    """The one message for an error of bad input; None for any other error."""
    from hydra.errors import HydraException, MissingConfigException, OverrideParseException
    from omegaconf.errors import OmegaConfBaseException

    from bpgrid.config import ConfigError
    from bpgrid.data.missing import MissingData

    if isinstance(err, MissingData):
        return str(err)  # one line per missing dataset
    if isinstance(err, MissingConfigException):
        return _no_such_option(err.missing_cfg_file, err.options or [])
    if isinstance(err, OverrideParseException):
        return (f"cannot read the override {err.override!r}: {_one_line(err).split(' See ')[0]}"
                f" (the grammar: https://hydra.cc/docs/advanced/override_grammar/basic)")
    cause = err.__cause__
    if isinstance(cause, OmegaConfBaseException) and "not in struct" in str(cause):
        return _no_such_key(cause)
    if isinstance(err, OmegaConfBaseException) and getattr(err, "full_key", None):
        return f"{err.full_key}: {str(err).splitlines()[0]}"  # a value that does not resolve
    if isinstance(err, (ConfigError, HydraException, OmegaConfBaseException, *errors)):
        return _one_line(err) + (f": {_one_line(cause)}" if cause else "")
    return None


def _one_line(err: BaseException) -> str:
    return " ".join(line.strip() for line in str(err).splitlines() if line.strip())


def _no_such_option(missing: str, options: list[str]) -> str:
    """``dataset=nope`` (Hydra's "Could not find 'dataset/nope'"): the group's options, those
    of bpgrid's conf/ (not Hydra's own launchers)."""
    group, _, option = missing.rpartition("/")
    ours = [o for o in options if (CONF / group / f"{o}.yaml").exists()] or options
    return (f"{group}={option} names no option of {group}{_did_you_mean(option, ours)}; "
            f"choose one of: {', '.join(ours)}")


def _no_such_key(cause) -> str:
    """``schedule.epoch=3`` (Hydra's "Could not override"): the keys of its parent."""
    parent = cause.full_key.rpartition(".")[0]
    keys = [str(k) for k in cause.parent_node] if cause.parent_node is not None else []
    return (f"{cause.full_key} is not a key of {parent or 'the config'}"
            f"{_did_you_mean(str(cause.key), keys)}; its keys: {', '.join(keys)}")


def _did_you_mean(name: str, names: list[str]) -> str:
    close = difflib.get_close_matches(name, names, n=3)
    return f" (did you mean {' or '.join(close)}?)" if close else ""
