import pytest
import torch

from bpgrid.checks import check_fraction
from bpgrid.feedback import make_rule
from bpgrid.models import FeedbackNet
from bpgrid.models.spec import FC
from bpgrid.optim import BatchManhattan


@pytest.mark.parametrize("value", [0.0, 0.5, 1.0])
def test_closed_interval_takes_both_ends(value):
    check_fraction("p", value, allow_one=True)


@pytest.mark.parametrize("value,allow_one,match", [
    (1.0, False, r"p must lie in \[0, 1\), got 1.0"),
    (-0.1, False, r"p must lie in \[0, 1\), got -0.1"),
    (-0.1, True, r"p must lie in \[0, 1\], got -0.1"),
    (1.5, True, r"p must lie in \[0, 1\], got 1.5"),
    (float("nan"), True, r"p must lie in \[0, 1\], got nan"),
    (float("nan"), False, r"p must lie in \[0, 1\), got nan"),
])
def test_outside_the_interval_names_key_interval_and_value(value, allow_one, match):
    with pytest.raises(ValueError, match=match):
        check_fraction("p", value, allow_one=allow_one)


def test_each_quantity_has_its_range():
    """A flip probability of 1 flips every sign (Table 3's 100%); dropout, Batch Manhattan's
    momentum and kp's decay stop short of 1."""
    assert make_rule("brsf", flip_prob=1.0).flip_prob == 1.0
    assert make_rule("frsf", flip_prob=1.0).flip_prob == 1.0
    with pytest.raises(ValueError, match=r"decay must lie in \[0, 1\)"):
        make_rule("kp", decay=1.0)
    assert make_rule("kp", decay=0.5).decay == 0.5
    with pytest.raises(ValueError, match=r"dropout must lie in \[0, 1\)"):
        FeedbackNet((FC(3), FC(2)), (4,), dropout=1.0)
    with pytest.raises(ValueError, match=r"momentum must lie in \[0, 1\)"):
        BatchManhattan([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=1.0)
