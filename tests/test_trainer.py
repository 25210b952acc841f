"""bpgrid/trainer.py: the choice of the eager or graphed step, and a checkpoint's state moving
between devices (the other trainer behaviour is tested through run_cell in test_cell.py, arrays
against their members trained alone in tests/arrays; graphed steps against eager ones in
test_step.py)."""

import copy

import pytest
import torch
from composing import compose_config

from bpgrid.config import ConfigError, to_dict, validate
from bpgrid.trainer import Trainer


def config(*overrides: str) -> dict:
    return to_dict(compose_config(["dataset=digits", "progress=never", *overrides]))


def test_cuda_graphs_setting_is_validated():
    with pytest.raises(ConfigError, match="cuda_graphs"):
        validate(config("cuda_graphs=maybe"))


def channels_last(weight: torch.Tensor) -> bool:
    """An array's conv weight (K, O, C, kh, kw) seen as the grouped conv's (K·O, C, kh, kw)."""
    return weight.flatten(0, 1).is_contiguous(memory_format=torch.channels_last)


def test_cpu_and_alignment_runs_use_eager_steps_and_image_nets_nhwc_kernels():
    cpu = Trainer([config("device=cpu")])
    assert cpu.graphed is None
    assert channels_last(cpu.net.conv2.weight) and cpu.net.channels_last
    assert not Trainer([config("device=cpu", "dataset=mnist1d")]).net.channels_last
    if torch.cuda.is_available():
        gpu = Trainer([config("device=cuda")])
        assert gpu.graphed is not None
        assert channels_last(gpu.net.conv2.weight)
        assert Trainer([config("device=cuda", "alignment=true")]).graphed is None
        assert Trainer([config("device=cuda", "cuda_graphs=false")]).graphed is None


def test_adam_checkpoint_from_a_gpu_resumes_on_the_cpu():
    """A GPU run's Adam is capturable, its step count on the device; the CPU run's is neither."""
    overrides = ["device=cpu", "schedule=report", "optimizer=adam"]
    first = Trainer([config(*overrides)])
    first.train_epoch(1)
    state = copy.deepcopy(first.state(0))  # as read back from a checkpoint: no shared tensors
    for group in state["optimizer"]["param_groups"]:  # as saved from a GPU run
        group["capturable"] = True
    resumed = Trainer([config(*overrides)])
    resumed.load_state(0, state)
    resumed.train_epoch(2)
    first.train_epoch(2)
    for key, value in first.state(0)["model"].items():
        assert torch.equal(resumed.state(0)["model"][key], value), key
    assert not any(g["capturable"] for g in resumed.state(0)["optimizer"]["param_groups"])
