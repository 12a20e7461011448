"""One precision policy: resolve_precision's answer on each kind of device, and autocast built from it."""

import pytest
import torch

import sft_utils
from sft_utils.train import precision as policy


@pytest.fixture
def gpu(monkeypatch):
    """A CUDA device as torch would report it: ``gpu(native=…)`` sets whether bf16 runs natively."""
    calls = []

    def fake(native):
        def is_bf16_supported(including_emulation=True):
            calls.append(including_emulation)
            return native or including_emulation  # an older GPU reports emulated bf16 unless asked not to

        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
        return calls

    return fake


def test_auto_is_fp32_on_a_cpu():
    assert sft_utils.resolve_precision("auto", "cpu") == "fp32"
    assert sft_utils.resolve_precision("auto", "cpu", scaler=False) == "fp32"
    assert sft_utils.resolve_precision("bf16", "cpu") == "bf16"
    assert sft_utils.resolve_precision("fp16", "cpu") == "fp16"  # asked for by name: torch's CPU scaler, to rehearse


def test_auto_is_bf16_only_where_the_gpu_has_it_natively(gpu):
    calls = gpu(native=True)
    assert sft_utils.resolve_precision("auto", "cuda") == "bf16"
    assert sft_utils.resolve_precision(device="cuda", scaler=False) == "bf16"
    assert calls and not any(calls)  # asked with including_emulation=False


def test_auto_on_an_older_gpu_is_fp16_with_a_scaler_and_fp32_without(gpu):
    gpu(native=False)  # a T4 or a V100: torch.cuda.is_bf16_supported() alone would say True
    assert sft_utils.resolve_precision("auto", "cuda") == "fp16"
    assert sft_utils.resolve_precision("auto", "cuda", scaler=False) == "fp32"
    assert sft_utils.resolve_precision("auto") == "fp16"  # device None: the GPU


@pytest.mark.parametrize(
    "precision, device, scaler, problem",
    [
        ("fp8", "cpu", True, "precision must be one of auto, bf16, fp16, fp32"),
        ("fp16", "cpu", False, "fp16 needs a gradient scaler"),
        ("fp16", "cuda", False, "fp16 needs a gradient scaler"),
    ],
)
def test_impossible_choices_are_refused(gpu, precision, device, scaler, problem):
    if device == "cuda":
        gpu(native=False)
    with pytest.raises(ValueError, match=problem):
        sft_utils.resolve_precision(precision, device, scaler=scaler)


def test_autocast_follows_the_policy():
    off = policy.autocast("auto", "cpu")
    assert (off.device, off._enabled) == ("cpu", False)
    on = policy.autocast("bf16", "cpu")
    assert (on.fast_dtype, on._enabled) == (torch.bfloat16, True)
    with on:
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16


def test_train_step_has_no_scaler_so_it_refuses_fp16(tokenizer, tiny_model):
    from sft_utils import AssistantOnlyCollator, tokenize_conversation
    from sft_utils.train import train_step

    messages = [{"role": "prompter", "text": "Hi"}, {"role": "assistant", "text": "Hello"}]
    batch = AssistantOnlyCollator()([tokenize_conversation(messages, tokenizer)])
    optimizer = torch.optim.SGD(tiny_model.parameters(), lr=0.0)
    with pytest.raises(ValueError, match="fp16 needs a gradient scaler, which this path has not"):
        train_step(tiny_model, batch, optimizer, precision="fp16")


@pytest.mark.parametrize(
    "device, problem", [("gpu", "not a device: 'gpu'"), ("cuda:0", "torch sees no CUDA GPU"), (3.5, "not a device")]
)
def test_a_device_that_is_not_there_is_named(device, problem):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError, match=problem):
        sft_utils.resolve_precision("auto", device)
