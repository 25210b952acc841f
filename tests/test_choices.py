from dataclasses import dataclass
from typing import ClassVar

import pytest

from bpgrid import choices
from bpgrid.feedback import RULES, FeedbackRule


def test_readme_tables_are_current():
    """Fails when a registry or conf/ changed without ``make readme``."""
    text = choices.README.read_text()
    assert choices.rewrite(text, choices.tables()) == text, "run make readme"


def block(name, body):
    return (f"<!-- begin choices: {name} (python -m bpgrid.choices writes this block) -->\n"
            f"{body}<!-- end choices: {name} -->")


def test_rewrite_replaces_only_the_named_blocks():
    old_a, new_a, new_b = "old a\n", "\n| A |\n\n", "\n| B |\n\n"
    text = f"intro\n{block('a', old_a)}\nmiddle\n{block('b', '')}\nend\n"
    new = choices.rewrite(text, {"a": "| A |", "b": "| B |"})
    assert new == f"intro\n{block('a', new_a)}\nmiddle\n{block('b', new_b)}\nend\n"
    assert choices.rewrite(new, {"a": "| A |", "b": "| B |"}) == new


def test_rewrite_refuses_a_readme_without_the_blocks():
    with pytest.raises(ValueError, match=r"README blocks \['a'\] differ from the tables \['a', "
                                         r"'b'\]"):
        choices.rewrite(block("a", ""), {"a": "x", "b": "y"})


def test_check_reports_a_stale_readme_and_a_run_rewrites_it(tmp_path, capsys):
    readme = tmp_path / "README.md"
    old = "| old |\n"
    readme.write_text(f"# x\n\n{block('config', '')}\n{block('datasets', old)}\n"
                      f"{block('feedback', '')}\n")
    assert choices.main(["--check", "--readme", str(readme)]) == 1
    assert "stale" in capsys.readouterr().err and "| old |" in readme.read_text()
    assert choices.main(["--readme", str(readme)]) == 0
    assert choices.main(["--check", "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "| `timit80` | TIMIT80 | `liao_fc` | `{features,labels}.npy` | by hand" in text
    assert "| `schedule.loss` | `cross_entropy`, `hinge`, `mse` |" in text
    assert "| old |" not in text


def test_a_new_rule_shows_in_the_feedback_table(monkeypatch):
    @dataclass(frozen=True)
    class Half(FeedbackRule):
        """Half feedback: V = W / 2."""

        name: ClassVar[str] = "half"
        scale: float = 0.5

    monkeypatch.setitem(RULES, "half", Half)
    assert choices.feedback_table().splitlines()[-1] == \
        "| `half` | Half feedback: V = W / 2. | `scale` (0.5) |"


def test_methods_show_with_their_labels():
    row = next(r for r in choices.choices_table().splitlines() if r.startswith("| `method`"))
    assert "`usf_bn_bm` (uSF+BN+BM)" in row and "`kp` (R*)" in row
