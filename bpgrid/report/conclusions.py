"""Which of Liao et al.'s conclusions (I)-(VI) (§1) hold on one dataset's row of Tables 2-4.

Each conclusion is split into checks; a check is a comparison of the row's errors (%, the best
over epochs and LR scales) with a stated threshold. A conclusion holds when all its checks hold,
does not hold when one does not, and cannot be told when a check lacks a number. Every check is
judged on the run's numbers and on the paper's, so the two can be read side by side.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

HOLDS, FAILS, UNKNOWN = "holds", "does not hold", "cannot tell"
WORSE = 3.0  # points of error: the paper's colour threshold ("worse than baseline by 3% or more")
FAIL = 50.0  # % error at or above which a method failed to learn (chance on 10 classes: 90%)
CONCLUSION_ROWS = {"paper_mnist": "mnist"}  # grid -> the dataset whose row is checked

Errors = Mapping[str, float]

# The columns of the paper's tables as the paper_mnist grid names them, with the paper's labels.
TABLES: dict[str, list[tuple[str, str]]] = {
    "Table 2 (Experiment A)": [
        ("sgd", "SGD"), ("bm", "BM"), ("bn", "BN"), ("bn_bm", "BN+BM"), ("usf", "uSF"),
        ("nusf", "NuSF"), ("usf_bm", "uSF+BM"), ("usf_bn", "uSF+BN"), ("usf_bn_bm", "uSF+BN+BM"),
        ("brsf_bn_bm", "brSF+BN+BM"), ("frsf_bn_bm", "frSF+BN+BM")],
    "Table 3 (Experiment B, % of feedback signs flipped)": [
        ("sgd", "SGD"), ("brsf_bn_bm_flip100", "brSF 100%"), ("brsf_bn_bm_flip75", "brSF 75%"),
        ("brsf_bn_bm_flip50", "brSF 50%"), ("brsf_bn_bm_flip25", "brSF 25%"),
        ("brsf_bn_bm", "Same sign (brSF+BN+BM)"), ("frsf_bn_bm_flip100", "frSF 100%"),
        ("frsf_bn_bm_flip75", "frSF 75%"), ("frsf_bn_bm_flip50", "frSF 50%"),
        ("frsf_bn_bm_flip25", "frSF 25%"), ("frsf_bn_bm", "Same sign (frSF+BN+BM)")],
    "Table 4, Experiment C1": [
        ("sgd", "SGD"), ("rndf", "RndF"), ("nusf", "NuSF"), ("bn", "BN"), ("rndf_bn", "RndF+BN"),
        ("rndf_bm", "RndF+BM"), ("rndf_bn_bm", "RndF+BN+BM"), ("usf_bn_bm", "uSF+BN+BM")],
    "Table 4, Experiment C2": [
        ("sgd_bottom", "SGD Bottom"), ("sgd_top", "SGD Top"), ("rndf_bottom", "RndF Bottom"),
        ("rndf_top", "RndF Top"), ("rndf_bn_bm_bottom", "RndF+BN+BM Bottom"),
        ("rndf_bn_bm_top", "RndF+BN+BM Top"), ("usf_bn_bm_bottom", "uSF+BN+BM Bottom"),
        ("usf_bn_bm_top", "uSF+BN+BM Top")],
}


@dataclass(frozen=True)
class Rule:
    """A comparison of a row's errors: its text, the columns it reads, and the test itself."""

    text: str
    columns: tuple[str, ...]
    test: Callable[[Errors], bool]

    def verdict(self, errors: Mapping[str, float | None]) -> str:
        values = {c: errors.get(c) for c in self.columns}
        if any(v is None for v in values.values()):
            return UNKNOWN
        return HOLDS if self.test(values) else FAILS


def _gap(e: Errors, a: str, b: str) -> float:
    return round(e[a] - e[b], 6)  # as printed, not float noise


def spread(columns: Sequence[str]) -> Rule:
    """The columns perform alike: their errors lie within WORSE points of each other."""
    cols = tuple(columns)
    return Rule(f"max − min of {', '.join(cols)} < {WORSE:g}", cols,
                lambda e: round(max(e[c] for c in cols) - min(e[c] for c in cols), 6) < WORSE)


def not_worse(columns: Sequence[str], than: str) -> Rule:
    """Each column is less than WORSE points worse than ``than`` (not yellow in the paper)."""
    cols = tuple(columns)
    return Rule(f"each of {', '.join(cols)} < {than} + {WORSE:g}", (*cols, than),
                lambda e: all(_gap(e, c, than) < WORSE for c in cols))


def worse(column: str, than: str) -> Rule:
    """The column is at least WORSE points worse than ``than`` (yellow in the paper)."""
    return Rule(f"{column} ≥ {than} + {WORSE:g}", (column, than),
                lambda e: _gap(e, column, than) >= WORSE)


def fails(columns: Sequence[str]) -> Rule:
    cols = tuple(columns)
    return Rule(f"each of {', '.join(cols)} ≥ {FAIL:g}%", cols,
                lambda e: all(e[c] >= FAIL for c in cols))


def learns(columns: Sequence[str]) -> Rule:
    cols = tuple(columns)
    return Rule(f"each of {', '.join(cols)} < {FAIL:g}%", cols,
                lambda e: all(e[c] < FAIL for c in cols))


def lower(column: str, than: str) -> Rule:
    return Rule(f"{column} < {than}", (column, than), lambda e: _gap(e, column, than) < 0)


def all_of(*rules: Rule) -> Rule:
    columns = tuple(dict.fromkeys(c for r in rules for c in r.columns))
    return Rule(" and ".join(r.text for r in rules), columns,
                lambda e: all(r.test(e) for r in rules))


def _signs_matter(rule: str) -> Rule:
    """Table 3: the error rises above same-sign feedback as signs are flipped (50% and more)."""
    flipped = [f"{rule}_bn_bm_flip{p}" for p in (50, 75, 100)]
    return all_of(*(lower(f"{rule}_bn_bm", f) for f in flipped),
                  worse(flipped[-1], f"{rule}_bn_bm"))


@dataclass(frozen=True)
class Check:
    claim: str  # what the paper's tables show, in its words
    rule: Rule


@dataclass(frozen=True)
class Conclusion:
    number: str
    statement: str  # the paper's §1 wording, shortened
    checks: tuple[Check, ...]


CONCLUSIONS = (
    Conclusion("I", "The magnitudes of feedback weights do not matter to performance.", (
        Check("With BN+BM, feedback with the weights' signs and uniform (uSF), batchwise random "
              "(brSF) or fixed random (frSF) magnitudes performs like exact feedback (Table 2).",
              spread(["bn_bm", "usf_bn_bm", "brsf_bn_bm", "frsf_bn_bm"])),)),
    Conclusion("II", "Magnitudes of the weight updates also do not matter.", (
        Check("Batch Manhattan (the sign of the batch gradient) performs like SGD, without and "
              "with BN (Table 2).", all_of(spread(["sgd", "bm"]), spread(["bn", "bn_bm"]))),)),
    Conclusion("III", "Normalizations such as BN and BM are necessary for asymmetric "
               "backpropagation to work.", (
        Check("uSF without BN or BM fails (Table 2).", fails(["usf"])),
        Check("uSF with BN, BM or both learns as well as SGD (Table 2).",
              not_worse(["usf_bm", "usf_bn", "usf_bn_bm"], "sgd")),
        Check("NuSF, uSF divided by the fan-in, does not fail without BN or BM: uSF's failure is "
              "its exploding gradients (Table 2).", not_worse(["nusf"], "sgd")),
        Check("BN improves fixed random feedback (Table 4 C1).", lower("rndf_bn", "rndf")),
    )),
    Conclusion("IV", "Asymmetric backpropagation evades the weight transport problem, so the "
               "brain could plausibly implement it.", (
        Check("What the tables can test: feedback that carries only the weights' signs, with "
              "random magnitudes, learns as well as SGD (Table 2).",
              not_worse(["brsf_bn_bm", "frsf_bn_bm"], "sgd")),)),
    Conclusion("V", "Sign-concordance is very important for strong performance; still, fixed "
               "random feedback with BN significantly outperforms chance.", (
        Check("Flipped signs hurt brSF (Table 3 Part 1).", _signs_matter("brsf")),
        Check("Flipped signs hurt frSF (Table 3 Part 2).", _signs_matter("frsf")),
        Check("Random feedback remains worse than its sign-concordant counterpart (Table 4 C1).",
              lower("usf_bn_bm", "rndf_bn_bm")),
        Check("With the last layer frozen, random feedback cannot train the layers below it; "
              "sign-concordant feedback can (Table 4 C2, Bottom).",
              all_of(fails(["rndf_bottom", "rndf_bn_bm_bottom"]),
                     not_worse(["usf_bn_bm_bottom"], "sgd_bottom"))),
        Check("Fixed random feedback with BN significantly outperforms chance (Table 4 C1).",
              learns(["rndf_bn", "rndf_bn_bm"])),
    )),
    Conclusion("VI", "Batch Manhattan is useful in general: with BN it often improves "
               "performance, especially for smaller training sets.", (
        Check("BM lowers the error of BN and of uSF+BN (Table 2).",
              all_of(lower("bn_bm", "bn"), lower("usf_bn_bm", "usf_bn"))),)),
)


@dataclass
class Finding:
    check: Check
    ours: str  # holds | does not hold | cannot tell
    paper: str


@dataclass
class Verdict:
    conclusion: Conclusion
    findings: list[Finding]
    ours: str
    paper: str


def combine(verdicts: Sequence[str]) -> str:
    """All hold: holds; any does not: does not hold; otherwise cannot tell."""
    if FAILS in verdicts:
        return FAILS
    return UNKNOWN if UNKNOWN in verdicts else HOLDS


def judge(errors: Mapping[str, float | None], paper: Mapping[str, float]) -> list[Verdict]:
    """Each conclusion judged on ``errors`` ({column: error or None}) and on the paper's row."""
    verdicts = []
    for conclusion in CONCLUSIONS:
        findings = [Finding(c, c.rule.verdict(errors), c.rule.verdict(paper))
                    for c in conclusion.checks]
        verdicts.append(Verdict(conclusion, findings, combine([f.ours for f in findings]),
                                combine([f.paper for f in findings])))
    return verdicts


def _numbers(columns: Sequence[str], errors: Mapping[str, float | None]) -> str:
    return ", ".join(f"{c} {errors[c]:.2f}" if errors.get(c) is not None else f"{c} –"
                     for c in columns)


def markdown(grid: str, dataset: str, errors: Mapping[str, float | None],
             paper: Mapping[str, float]) -> str:
    """conclusions.md: the verdicts, each check's rule and numbers, the rows table by table."""
    verdicts = judge(errors, paper)
    lines = [f"# {grid}: Liao et al.'s conclusions (I)–(VI) on {dataset}", "",
             "Errors (%) are each column's best validation error over epochs and LR scales, as "
             "in the tables. A conclusion holds when all its checks hold, does not hold when one "
             "does not, and cannot be told when a check lacks a number (missing, failed or "
             f"diverged cells). Thresholds: {WORSE:g} points, the paper's colour threshold, "
             f"for \"worse\" and \"alike\"; {FAIL:g}% error for \"fails\" (chance on 10 classes is "
             "90%). Each check is judged on this run's numbers and on the paper's.", "",
             "| conclusion | this run | the paper's numbers |", "|---|---|---|"]
    lines += [f"| ({v.conclusion.number}) {v.conclusion.statement} | {v.ours} | {v.paper} |"
              for v in verdicts]
    for v in verdicts:
        lines += ["", f"## ({v.conclusion.number}) {v.conclusion.statement}", "",
                  "| check | rule | this run's numbers | verdict | the paper's numbers | verdict |",
                  "|---|---|---|---|---|---|"]
        for f in v.findings:
            cols = f.check.rule.columns
            lines.append(f"| {f.check.claim} | `{f.check.rule.text}` | {_numbers(cols, errors)} "
                         f"| {f.ours} | {_numbers(cols, paper)} | {f.paper} |")
    lines += ["", f"## The {dataset} rows, table by table", "",
              "A column that appears in several tables is one set of runs, shown in each."]
    for title, columns in TABLES.items():
        lines += ["", f"### {title}", "", "| column | this run | paper | difference |",
                  "|---|---|---|---|"]
        for column, label in columns:
            ours, theirs = errors.get(column), paper.get(column)
            diff = f"{ours - theirs:+.2f}" if ours is not None and theirs is not None else "–"
            lines.append(f"| {label} | {'–' if ours is None else f'{ours:.2f}'} | "
                         f"{'–' if theirs is None else f'{theirs:.2f}'} | {diff} |")
    return "\n".join(lines) + "\n"
