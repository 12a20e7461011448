"""Select-then-project in chunks: the same loss and gradients as full logits + MaskedCrossEntropyLoss."""

import pytest
import torch

from sft_utils import AssistantOnlyCollator, MaskedCrossEntropyLoss, tokenize_conversation
from sft_utils.scale.chunked_loss import chunked_masked_cross_entropy
from sft_utils.train.step import masked_loss_sum


@pytest.fixture
def inputs():
    """hidden [3, 40, 16], head weight [300, 16] and bias, targets with -100 off the mask, a 40% mask."""
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(3, 40, 16, generator=generator)
    weight = torch.randn(300, 16, generator=generator) * 0.5
    bias = torch.randn(300, generator=generator)
    targets = torch.randint(0, 300, (3, 40), generator=generator)
    mask = torch.rand(3, 40, generator=generator) < 0.4
    return hidden, weight, bias, targets.masked_fill(~mask, -100), mask


def reference_mean(hidden, weight, bias, targets, mask):
    return MaskedCrossEntropyLoss()(torch.nn.functional.linear(hidden, weight, bias), targets, mask)


def leaves(*tensors):
    return [t.detach().clone().requires_grad_() for t in tensors]


@pytest.mark.parametrize("chunk_rows", [1, 7, 48, 10_000])
@pytest.mark.parametrize("with_bias", [False, True])
def test_loss_and_gradients_equal_full_logits(inputs, chunk_rows, with_bias):
    hidden, weight, bias, targets, mask = inputs
    h1, w1, b1 = leaves(hidden, weight, bias)
    h2, w2, b2 = leaves(hidden, weight, bias)
    total, count = chunked_masked_cross_entropy(
        h1, w1, targets, mask, bias=b1 if with_bias else None, chunk_rows=chunk_rows
    )
    expected = reference_mean(h2, w2, b2 if with_bias else None, targets, mask)
    assert count == int(mask.sum()) > 0
    assert total.dtype == torch.float32
    assert (total / count).item() == pytest.approx(expected.item(), abs=1e-6)
    (total / count).backward()
    expected.backward()
    torch.testing.assert_close(h1.grad, h2.grad, rtol=0, atol=1e-6)
    torch.testing.assert_close(w1.grad, w2.grad, rtol=0, atol=1e-6)
    if with_bias:
        torch.testing.assert_close(b1.grad, b2.grad, rtol=0, atol=1e-6)
    else:
        assert b1.grad is None


def test_untrained_rows_cannot_leak(inputs):
    hidden, weight, _, targets, mask = inputs
    hidden = hidden.masked_fill(~mask.unsqueeze(-1), float("nan")).requires_grad_()
    total, _ = chunked_masked_cross_entropy(hidden, weight, targets, mask, chunk_rows=5)
    total.backward()
    assert torch.isfinite(total)
    assert torch.isfinite(hidden.grad).all() and (hidden.grad[~mask] == 0).all()
    assert (hidden.grad[mask].abs().sum(-1) > 0).all()


def test_no_trained_target_gives_a_differentiable_zero(inputs):
    hidden, weight, _, targets, mask = inputs
    hidden, weight = leaves(hidden, weight)
    total, count = chunked_masked_cross_entropy(hidden, weight, targets, torch.zeros_like(mask))
    total.backward()
    assert (total.item(), count) == (0.0, 0)
    assert (hidden.grad == 0).all() and (weight.grad == 0).all()


def test_no_tensor_of_all_rows_by_vocabulary_is_kept_for_backward(inputs):
    """Only inputs and one number per row are saved: memory for backward does not grow with N x vocab."""
    hidden, weight, _, targets, mask = inputs
    hidden, weight = leaves(hidden, weight)
    saved = []

    def pack(tensor):
        saved.append(tuple(tensor.shape))
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        chunked_masked_cross_entropy(hidden, weight, targets, mask, chunk_rows=4)
    n, vocab = int(mask.sum()), weight.shape[0]
    assert (n, vocab) not in saved and all(torch.Size(s).numel() < n * vocab for s in saved)
    # The full-logits route, for contrast, saves a [B, T, vocab]-sized tensor.
    saved.clear()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        reference_mean(hidden, weight, None, targets, mask)
    assert any(torch.Size(s).numel() >= n * vocab for s in saved)


def test_bf16_autocast_matches_full_logits_under_autocast(inputs):
    hidden, weight, _, targets, mask = inputs
    with torch.autocast("cpu", dtype=torch.bfloat16):
        total, count = chunked_masked_cross_entropy(hidden, weight, targets, mask, chunk_rows=9)
        expected = reference_mean(hidden, weight, None, targets, mask)
    assert (total / count).item() == pytest.approx(expected.item(), rel=2e-3)
    # Not the float32 value: the projection really ran in bfloat16, as the model's head would.
    assert (total / count).item() != reference_mean(hidden, weight, None, targets, mask).item()


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (lambda h, w, t, m: (h[0], w, t, m), ValueError, r"hidden \[B, T, H\]"),
        (lambda h, w, t, m: (h, w, t[:, :-1], m), ValueError, "must be"),
        (lambda h, w, t, m: (h, w, t.float(), m), TypeError, "integer"),
        (lambda h, w, t, m: (h, w, t, m.float() * 2), ValueError, "only 0 and 1"),
        (lambda h, w, t, m: (h, w, t.masked_fill(m, 300), m), ValueError, r"outside 0\.\.299"),
        # Before: an AttributeError ('numpy.ndarray' object has no attribute 'bool') from inside.
        (lambda h, w, t, m: (h, w, t, m.numpy()), TypeError, "mask must be a torch.Tensor, got ndarray"),
        (lambda h, w, t, m: (h.tolist(), w, t, m), TypeError, "hidden must be a torch.Tensor, got list"),
    ],
)
def test_bad_inputs_are_refused(inputs, change, error, match):
    hidden, weight, _, targets, mask = inputs
    with pytest.raises(error, match=match):
        chunked_masked_cross_entropy(*change(hidden, weight, targets, mask))


@pytest.mark.parametrize("chunk_rows", [0, -1, 2.0, True])
def test_bad_chunk_rows_is_refused(inputs, chunk_rows):
    hidden, weight, _, targets, mask = inputs
    with pytest.raises(ValueError, match="chunk_rows"):
        chunked_masked_cross_entropy(hidden, weight, targets, mask, chunk_rows=chunk_rows)


@pytest.fixture
def batch(tokenizer, course_conversations):
    examples = [tokenize_conversation(c["messages"], tokenizer) for c in course_conversations[:4]]
    return AssistantOnlyCollator(tokenizer.pad_token_id)(examples)


def test_training_loss_is_chunked_by_default_and_equals_full_logits(tiny_model, batch):
    """sft_utils.train.step.masked_loss_sum on pythia-14m: same sum and same gradient of every parameter."""
    params = list(tiny_model.parameters())

    def loss_and_grads(**kwargs):
        tiny_model.zero_grad(set_to_none=True)
        total, count = masked_loss_sum(tiny_model, batch, **kwargs)
        (total / count).backward()
        grads = [p.grad.clone() for p in params]
        tiny_model.zero_grad(set_to_none=True)
        return total.item(), count, grads

    chunked = loss_and_grads(chunk_rows=16)
    full = loss_and_grads(full_logits=True)
    default = loss_and_grads()
    assert chunked[1] == full[1] == int(batch["label_masks"].sum())
    assert chunked[0] / chunked[1] == pytest.approx(full[0] / full[1], rel=1e-6)
    assert default[0] == pytest.approx(chunked[0], rel=1e-6)
    for a, b in zip(chunked[2], full[2]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_full_logits_argument_changes_the_path(tiny_model, batch):
    """The default keeps no [trained rows, vocab] tensor for backward; full_logits=True (the reference) does."""
    logits_numel = int(batch["label_masks"].sum()) * tiny_model.config.vocab_size

    weights = {p.data_ptr() for p in tiny_model.parameters()}  # saved by every route; not activations

    def largest_saved(full_logits=False):
        sizes = []

        def pack(tensor):
            sizes.append(0 if tensor.data_ptr() in weights else tensor.numel())
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            masked_loss_sum(tiny_model, batch, full_logits=full_logits)
        return max(sizes)

    assert largest_saved() < logits_numel
    assert largest_saved(full_logits=True) >= logits_numel


def test_peak_memory_counts_what_a_function_allocates_on_the_cpu():
    from sft_utils.scale.memory import peak_memory

    peak, kept = peak_memory(lambda: torch.ones(1000, 1000))
    assert peak == kept.numel() * 4 == 4_000_000
    # A temporary counts while it lives: ones (8 MB) and ones * 2 (8 MB) exist together.
    peak, _ = peak_memory(lambda: (torch.ones(2000, 1000) * 2).sum())
    assert 16_000_000 <= peak < 16_100_000


def test_chunked_loss_needs_less_memory_than_full_logits(inputs):
    """Measured: with a vocabulary much wider than a chunk, the chunked route's peak is far below full logits'."""
    from sft_utils.scale.memory import peak_memory

    generator = torch.Generator().manual_seed(1)
    hidden = torch.randn(4, 128, 32, generator=generator)
    weight = torch.randn(20_000, 32, generator=generator) * 0.1
    targets = torch.randint(0, 20_000, (4, 128), generator=generator)
    mask = torch.rand(4, 128, generator=generator) < 0.3
    logits_bytes = hidden.shape[0] * hidden.shape[1] * weight.shape[0] * 4

    def full():
        reference_mean(hidden.requires_grad_(), weight, None, targets, mask).backward()

    def chunked():
        chunked_masked_cross_entropy(hidden.requires_grad_(), weight, targets, mask, chunk_rows=16)[0].backward()

    assert peak_memory(full)[0] >= logits_bytes
    assert peak_memory(chunked)[0] < logits_bytes / 10


def test_a_bias_of_the_wrong_size_is_refused(inputs):
    """Before: a RuntimeError about tensor sizes from inside the projection."""
    hidden, weight, bias, targets, mask = inputs
    with pytest.raises(ValueError, match=r"bias must be \[V\] = \(300,\), got \(299,\)"):
        chunked_masked_cross_entropy(hidden, weight, targets, mask, bias=bias[:-1])
