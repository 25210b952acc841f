import torch
from torch import nn

from bpgrid.feedback import FeedbackLinear
from bpgrid.feedback.trace import LayerCall, trace


def test_trace_records_calls_and_leaves_the_model_as_it_was():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6, affine=False), nn.Dropout(0.5),
                          FeedbackLinear(6, 3, rule="wm"), nn.Linear(3, 2))
    model[1].eval()
    frozen = model[0]
    frozen.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(5, 4)
    rng = torch.get_rng_state()
    seen = trace(model, {"0": model[0], "3": model[3], "4": model[4]}, x)
    assert seen.batch == 5 and seen.output_shape == (5, 2)
    assert seen.calls == {"0": LayerCall((5, 4), False), "3": LayerCall((5, 6), False),
                          "4": LayerCall((5, 3), True)}
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())  # BN stats, wm's V
    assert torch.equal(torch.get_rng_state(), rng)  # dropout and wm's noise drew from a fork
    assert model.training and not model[1].training  # modes as they were
    assert not model._forward_pre_hooks and not model[3]._forward_pre_hooks


def test_trace_turns_fused_fast_paths_off_so_every_layer_is_seen():
    layer = nn.TransformerEncoderLayer(8, 2, 16, batch_first=True).eval()
    with torch.no_grad():
        seen = trace(layer, {"linear1": layer.linear1, "linear2": layer.linear2},
                     torch.randn(3, 4, 8))
    assert set(seen.calls) == {"linear1", "linear2"} and not layer.training
