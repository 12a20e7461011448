"""A regression suite from masking faults reported against SFT tools, one test per fault.

Each docstring says what went wrong in the wild and how it shows; each test fails if the fault comes
back to sft_utils. The masked loss equal to GPT-NeoX's own ``labels`` loss is in test_loss.py.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sft_utils import (
    AssistantOnlyCollator,
    MaskedCrossEntropyLoss,
    PackedCollator,
    shift_for_next_token,
    tokenize_conversation,
    truncation_report,
)
from sft_utils.train.step import masked_loss_sum

ROOT = Path(__file__).resolve().parents[2]
SHORT = [{"role": "prompter", "text": "Hi"}, {"role": "assistant", "text": "Hello!"}]  # 7 tokens
LONG = [
    {"role": "prompter", "text": "Tell me a long story about a cat."},
    {"role": "assistant", "text": "Once upon a time a cat sat on a warm mat and slept all day long."},
]
EOS, PAD, ASSISTANT_ID = 0, 1, 50280


def test_1_padding_with_the_eos_id_does_not_hide_the_end_of_reply(tokenizer):
    """Fault: the pad token is set to the eos token (a common default for models without one), then
    padding is masked *by id* (``labels[input_ids == pad_id] = -100``). Every genuine closing
    ``<|endoftext|>`` is masked with it, so the model never learns to stop and generates forever.
    Here: a short and a long conversation in one batch, padded with id 0 = ``<|endoftext|>``."""
    short, long = (tokenize_conversation(m, tokenizer) for m in (SHORT, LONG))
    batch = AssistantOnlyCollator(pad_token_id=EOS, convention="labels")([short, long])
    assert batch["input_ids"][0, 7:].eq(EOS).all()  # padding with the eos id ...
    # ... the faulty by-id rule masks the short reply's real <|endoftext|> (position 6) with the padding:
    by_id = batch["input_ids"].masked_fill(batch["input_ids"] == EOS, -100)
    assert by_id[0, 6].item() == -100
    # the library pads by length: the real <|endoftext|> is trained, the padding after it is not
    assert batch["labels"][0, :7].tolist() == [-100] * 3 + [ASSISTANT_ID, 12092, 2, EOS]  # <|assistant|>Hello!<eos>
    assert batch["labels"][0, 7:].eq(-100).all()
    shifted = AssistantOnlyCollator(pad_token_id=EOS)([short, long])
    assert shifted["targets"][0, 5].item() == EOS and shifted["label_masks"][0, 5]
    assert shifted["label_masks"][0].sum().item() == 4


def test_2_the_first_token_of_each_reply_is_trained_from_the_assistant_marker(tokenizer, course_conversations):
    """Fault: an off-by-one where the prompt mask is applied to the targets unshifted (or the prompt
    length is counted with one token too many): the first token of every reply is never trained, and
    the model learns replies that begin mid-way. Checked on every reply of every course conversation."""
    replies = 0
    for conversation in course_conversations:
        example = tokenize_conversation(conversation["messages"], tokenizer)
        shifted = shift_for_next_token(example)
        for t, token in enumerate(shifted["input_ids"]):
            if token == ASSISTANT_ID:
                reply = conversation["messages"][example["message_indices"][t]]["text"]
                first_text_token = tokenizer(reply)["input_ids"][0]
                assert shifted["targets"][t] == first_text_token and shifted["label_masks"][t], conversation["id"]
                # and the marker itself is a trained target, predicted from the prompter's <|endoftext|>
                assert shifted["targets"][t - 1] == ASSISTANT_ID and shifted["label_masks"][t - 1]
                replies += 1
    assert replies == sum(m["role"] == "assistant" for c in course_conversations for m in c["messages"])


def test_3_the_library_path_shifts_once(tokenizer, tiny_model):
    """Fault: labels that are already shifted (targets) are handed to ``model(labels=…)``, which
    shifts again: position t is scored on token t + 2. Nothing crashes and the loss looks plausible,
    but the model is trained to skip a token. The library's two paths each shift exactly once."""
    examples = [tokenize_conversation(m, tokenizer) for m in (SHORT, LONG)]
    shifted = AssistantOnlyCollator(PAD)(examples)
    labels = AssistantOnlyCollator(PAD, convention="labels")(examples)
    # the labels convention is unshifted: labels == input_ids where trained
    trained = labels["labels"] != -100
    assert torch.equal(labels["labels"][trained], labels["input_ids"][trained])
    with torch.no_grad():
        logits = tiny_model(input_ids=labels["input_ids"], attention_mask=labels["attention_mask"]).logits
        once_model = tiny_model(**labels).loss
        once_memo, count = masked_loss_sum(tiny_model, shifted)
        twice = torch.where(shifted["label_masks"], shifted["targets"], -100)
        twice_model = tiny_model(shifted["input_ids"], attention_mask=shifted["attention_mask"], labels=twice).loss
    # an independent reference: position t scored on input t + 1
    reference = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), labels["labels"][:, 1:].flatten())
    assert once_model.item() == pytest.approx(reference.item(), abs=1e-5)
    assert (once_memo / count).item() == pytest.approx(reference.item(), abs=1e-5)
    # shifted twice = position t scored on input t + 2 (the target after next)
    next_next = torch.nn.functional.cross_entropy(logits[:, :-2].flatten(0, 1), twice[:, 1:].flatten())
    assert twice_model.item() == pytest.approx(next_next.item(), abs=1e-5)
    scored = twice[:, 1:] != -100  # what position t is scored on: the input two tokens on, never the next one
    assert torch.equal(twice[:, 1:][scored], labels["input_ids"][:, 2:][scored])
    assert (twice[:, 1:][scored] != labels["input_ids"][:, 1:-1][scored]).all()


def test_4_gradient_accumulation_weights_every_trained_token_equally(tokenizer, tiny_model):
    """Fault: with gradient accumulation, each micro-batch's *mean* loss is averaged over the
    micro-batches, so a token in a micro-batch with 2 trained tokens weighs 100 times one in a
    micro-batch with 200 (transformers fixed this in its Trainer in 2024). The right loss is the total
    over all 202 trained tokens / 202: sum-reduced micro-batch losses divided once by the step's count."""
    two = tokenize_conversation(SHORT, tokenizer, max_length=5)  # cut after "Hello": <|assistant|>, Hello trained
    reply = "word" + " word" * 197  # 198 tokens: with the marker and <|endoftext|>, 200 trained targets
    two_hundred = tokenize_conversation([SHORT[0], {"role": "assistant", "text": reply}], tokenizer)
    collate = AssistantOnlyCollator(PAD)
    micro = [collate([two]), collate([two_hundred])]
    assert [int(b["label_masks"].sum()) for b in micro] == [2, 200]
    params = [p for p in tiny_model.parameters() if p.requires_grad]

    def loss_and_grads(loss):
        return loss.detach(), torch.autograd.grad(loss, params)

    whole, whole_grads = loss_and_grads(masked_loss_sum(tiny_model, collate([two, two_hundred]))[0] / 202)
    accumulated = sum(masked_loss_sum(tiny_model, b)[0] for b in micro) / 202
    accumulated, accumulated_grads = loss_and_grads(accumulated)
    assert accumulated.item() == pytest.approx(whole.item(), abs=1e-5)
    for a, b in zip(accumulated_grads, whole_grads):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-4)
    # the faulty mean of means is a different number
    means = [masked_loss_sum(tiny_model, b)[0].item() / n for b, n in zip(micro, (2, 200))]
    assert abs(sum(means) / 2 - whole.item()) > 1e-3


def test_5_an_example_whose_trained_tokens_are_all_cut_gives_no_nan_and_is_counted(tokenizer, tiny_model):
    """Fault: truncation cuts every assistant token of a long-prompt example; the masked mean then
    divides 0 by 0 and a NaN loss poisons the weights, or the example silently trains nothing. Here
    the loss is finite (0 alone; in a batch, only the other example counts), a warning names the
    conversation and truncation_report counts it."""
    with pytest.warns(UserWarning, match="conversation 'long-prompt': truncation to max_length=5"):
        empty = tokenize_conversation(LONG, tokenizer, max_length=5, conversation_id="long-prompt")
    full = tokenize_conversation(SHORT, tokenizer)
    alone, both = AssistantOnlyCollator(PAD)([empty]), AssistantOnlyCollator(PAD)([empty, full])
    with torch.no_grad():
        logits = tiny_model(input_ids=alone["input_ids"]).logits
    assert MaskedCrossEntropyLoss()(logits, alone["targets"], alone["label_masks"]).item() == 0.0
    total, count = masked_loss_sum(tiny_model, both)
    only_full = masked_loss_sum(tiny_model, AssistantOnlyCollator(PAD)([full]))[0]
    assert count == 4 and torch.isfinite(total) and total.item() == pytest.approx(only_full.item(), abs=1e-5)
    report = truncation_report([{"id": "long-prompt", "messages": LONG}], tokenizer, max_length=5)
    assert report.no_trained_target == ["long-prompt"] and report.trained_targets_after == 0


HASH_SCRIPT = """
import sft_utils
tok = sft_utils.load_tokenizer(verbose=False)
ids = sft_utils.tokenize_conversation([{"role": "prompter", "text": "Hi"}, {"role": "assistant", "text": "Yo"}], tok)
print({t: tok.convert_tokens_to_ids(t) for t in sft_utils.ROLE_TOKENS}, ids["input_ids"], hash("<|prompter|>"))
"""


def test_6_role_token_ids_do_not_depend_on_the_hash_seed():
    """Fault: special tokens added from a ``set`` get ids in an order that depends on the process's
    string-hash seed, so a model trained in one process sees other ids for its role tokens in the
    next (PYTHONHASHSEED differs per process by default). Two processes, two seeds, one set of ids."""
    outputs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
        run = subprocess.run([sys.executable, "-c", HASH_SCRIPT], env=env, capture_output=True, text=True, check=True)
        outputs.append(run.stdout.strip().rsplit(" ", 1))
    (ids_1, hash_1), (ids_2, hash_2) = outputs
    assert hash_1 != hash_2  # the seeds did change the process state ...
    assert ids_1 == ids_2  # ... and not the ids
    expected = "{'<|prefix_begin|>': 50277, '<|prefix_end|>': 50278, '<|prompter|>': 50279, '<|assistant|>': 50280, "
    assert ids_1 == expected + "'<|system|>': 50281} [50279, 12764, 0, 50280, 39996, 0]"


def test_7_packed_conversations_each_attend_only_to_themselves(tokenizer, tiny_model, course_conversations):
    """Fault: packing several conversations in one row by plain concatenation lets each one attend
    to the ones before it, continues position ids across them, and trains the last token of one
    conversation to predict the first token of the next. The packed loss then differs from the
    separate losses. With sft_utils.scale.packing it equals their sum, and each segment's logits equal those
    of its own forward pass."""
    examples = [tokenize_conversation(c["messages"], tokenizer) for c in course_conversations[:3]]
    packed = PackedCollator(PAD)([examples, examples[1:]])
    sum_loss = MaskedCrossEntropyLoss(reduction="sum")
    with torch.no_grad():
        logits = tiny_model(
            input_ids=packed["input_ids"],
            attention_mask=packed["attention_mask"],
            position_ids=packed["position_ids"],
        ).logits
        packed_total = sum_loss(logits, packed["targets"], packed["label_masks"])
        separate = [AssistantOnlyCollator(PAD)([e]) for e in examples]
        separate_logits = [tiny_model(input_ids=b["input_ids"]).logits for b in separate]
        separate_totals = [sum_loss(lg, b["targets"], b["label_masks"]) for lg, b in zip(separate_logits, separate)]
        naive = AssistantOnlyCollator(PAD)([{k: [x for e in examples for x in e[k]] for k in examples[0]}])
        naive_total = sum_loss(tiny_model(input_ids=naive["input_ids"]).logits, naive["targets"], naive["label_masks"])
    expected = sum(separate_totals) + sum(separate_totals[1:])
    assert packed_total.item() == pytest.approx(expected.item(), rel=1e-5)
    assert int(packed["label_masks"].sum()) == sum(int(b["label_masks"].sum()) for b in separate + separate[1:])
    # segment by segment, the logits are those of a separate forward pass
    start = 0
    for example, own in zip(examples, separate_logits):
        n = len(example["input_ids"]) - 1
        torch.testing.assert_close(logits[0, start : start + n], own[0], atol=1e-4, rtol=1e-4)
        start += n + 1  # the seam position (a segment's last token) is not in the separate pass's inputs
    # plain concatenation gives another number: attention and positions leak across conversations
    assert abs(naive_total.item() - sum(separate_totals).item()) > 1e-2


def test_8_a_reply_cut_by_truncation_keeps_its_surviving_tokens_trained(tokenizer):
    """Fault: a tool that drops (or fully masks) any assistant turn that does not fit in max_length
    throws away the head of long replies, so long answers are never trained at all. Here the
    surviving head of a cut reply is trained and decodes to the start of the reply."""
    long_reply = LONG[1]["text"]
    example = tokenize_conversation(LONG, tokenizer, max_length=20)
    prompt_length = len(tokenizer(LONG[0]["text"])["input_ids"]) + 2  # with <|prompter|> and <|endoftext|>
    assert example["label_mask"] == [False] * prompt_length + [True] * (20 - prompt_length)
    trained = [i for i, on in zip(example["input_ids"], example["label_mask"]) if on]
    decoded = tokenizer.decode(trained, clean_up_tokenization_spaces=False)
    assert decoded == "<|assistant|>Once upon a time a cat sat on" and long_reply.startswith(decoded[13:])
    assert sum(shift_for_next_token(example)["label_masks"]) == 20 - prompt_length
