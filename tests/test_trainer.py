"""bpgrid/trainer.py: the choice of the eager or graphed step, and a checkpoint's state moving
between devices (the other trainer behaviour is tested through run_cell in test_cell.py; graphed
steps against eager ones in test_step.py)."""

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


def test_cpu_and_alignment_runs_use_eager_steps():
    cpu = Trainer(config("device=cpu"))
    assert cpu.graphed is None
    assert not cpu.model.conv2.weight.is_contiguous(memory_format=torch.channels_last)
    if torch.cuda.is_available():
        gpu = Trainer(config("device=cuda"))
        assert gpu.graphed is not None
        assert gpu.model.conv2.weight.is_contiguous(memory_format=torch.channels_last)
        assert Trainer(config("device=cuda", "alignment=true")).graphed is None
        assert Trainer(config("device=cuda", "cuda_graphs=false")).graphed is None


def test_adam_checkpoint_from_a_gpu_resumes_on_the_cpu():
    """A GPU run's Adam is capturable, its step count on the device; the CPU run's is neither."""
    overrides = ["device=cpu", "schedule=report", "optimizer=adam"]
    first = Trainer(config(*overrides))
    first.train_epoch(1)
    state = copy.deepcopy(first.state())  # as read back from a checkpoint: no shared tensors
    for group in state["optimizer"]["param_groups"]:  # as saved from a GPU run
        group["capturable"] = True
    resumed = Trainer(config(*overrides))
    resumed.load_state(state)
    resumed.train_epoch(2)  # a capturable Adam would refuse CPU step counts here
    first.train_epoch(2)
    for key, value in first.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key
    assert not any(g["capturable"] for g in resumed.parts.optimizer.param_groups)
