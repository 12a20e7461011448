"""The full fine-tuning loop: token-weighted accumulation, smoke training, checkpoints, accelerate."""

import copy
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import GPTNeoXForCausalLM

from sft_utils import (
    AssistantOnlyCollator,
    CausalLMCollator,
    course_data_path,
    load_conversations,
    pythia_config,
    tokenize_conversation,
)
from sft_utils.train import (
    TrainConfig,
    accumulate_gradients,
    evaluate,
    generate_reply,
    masked_loss_sum,
    micro_batch_indices,
    resolve_precision,
    train,
)
from sft_utils.train.loop import make_collator, shifted_from_labels


def _grads(model):
    return [p.grad.detach().clone() for p in model.parameters()]


@pytest.fixture(scope="module")
def short_and_long(tokenizer):
    short = tokenize_conversation(
        [{"role": "prompter", "text": "Say hi."}, {"role": "assistant", "text": "Hi"}], tokenizer
    )
    numbers = " ".join(str(i) for i in range(1, 200))
    long = tokenize_conversation(
        [{"role": "prompter", "text": "Count."}, {"role": "assistant", "text": numbers}], tokenizer
    )
    return short, long


def test_accumulation_weighs_every_trained_token_equally(tiny_model, tokenizer, short_and_long):
    collate = AssistantOnlyCollator(tokenizer.pad_token_id)
    short, long = short_and_long
    micro = [collate([short]), collate([long])]
    assert [int(b["label_masks"].sum()) for b in micro] == [3, 201]
    accumulated, whole = copy.deepcopy(tiny_model), copy.deepcopy(tiny_model)
    loss, count = accumulate_gradients(accumulated, micro)
    big_loss, big_count = accumulate_gradients(whole, [collate([short, long])])
    assert count == big_count == 204
    assert loss == pytest.approx(big_loss, rel=1e-6)
    for a, b in zip(_grads(accumulated), _grads(whole)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    # The reference the test must tell apart: the mean of the two micro-batch means.
    mean_of_means = copy.deepcopy(tiny_model)
    sum(s / n for s, n in (masked_loss_sum(mean_of_means, b) for b in micro)).div(2).backward()
    assert not torch.allclose(_grads(mean_of_means)[0], _grads(whole)[0], rtol=1e-3, atol=1e-7)


def test_plain_sft_batches_train_every_real_token(tokenizer, short_and_long):
    short, long = short_and_long
    batch = shifted_from_labels(CausalLMCollator(tokenizer)([short, long]))
    assert batch["label_masks"].sum(1).tolist() == [len(short["input_ids"]) - 1, len(long["input_ids"]) - 1]
    assert torch.equal(batch["targets"][1], torch.tensor(long["input_ids"][1:]))
    assert make_collator("plain", tokenizer)([short])["label_masks"].all()
    with pytest.raises(ValueError, match="'masked' or 'plain'"):
        make_collator("mean", tokenizer)


def test_length_grouping_cuts_padding():
    lengths = torch.randint(5, 300, (64,), generator=torch.Generator().manual_seed(0)).tolist()
    epoch = [b for b, _ in zip(micro_batch_indices(lengths, 4, seed=0), range(16))]
    assert sorted(i for b in epoch for i in b) == list(range(64))

    def padding(batches):  # positions padded to each batch's longest conversation
        return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)

    shuffled = torch.randperm(64, generator=torch.Generator().manual_seed(0)).view(16, 4).tolist()
    assert padding(epoch) < padding(shuffled) / 4


def test_precision_choice():
    assert resolve_precision("auto", "cpu") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"
    assert resolve_precision("fp16", "cpu") == "fp16"  # the loop's path, with torch's CPU gradient scaler
    with pytest.raises(ValueError, match="fp16 needs a gradient scaler"):
        resolve_precision("fp16", "cpu", scaler=False)
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("fp8", "cpu")


@pytest.fixture(scope="module")
def smoke_run(tokenizer, course_conversations, tmp_path_factory):
    """A short smoke run on the course's conversations, three held out."""
    held_out = {"capital-single", "german-system", "emoji-party"}
    train_set = [c for c in course_conversations if c["id"] not in held_out]
    valid_set = [c for c in course_conversations if c["id"] in held_out]
    torch.manual_seed(0)
    model = GPTNeoXForCausalLM(pythia_config("pythia-14m"))
    model.sft_pretrained = False
    output_dir = tmp_path_factory.mktemp("checkpoint")
    config = TrainConfig.smoke(steps=12, max_length=128, warmup_steps=2, eval_every=6, output_dir=str(output_dir))
    model, history = train(config, model, tokenizer, train_set, valid_set, progress=False)
    return model, history, output_dir, valid_set


def test_smoke_training_lowers_the_validation_assistant_only_loss(smoke_run, tokenizer):
    model, history, _, valid_set = smoke_run
    assert history["eval_step"] == [0, 6, 12] and history["step"] == list(range(1, 13))
    assert history["valid_loss"][0] > 10.0 and history["valid_loss"][-1] < history["valid_loss"][0] - 0.3
    assert history["valid_ppl"][-1] == pytest.approx(torch.tensor(history["valid_loss"][-1]).exp().item(), rel=1e-5)
    assert history["trained_tokens"][-1] > history["trained_tokens"][0] > 0
    assert 0.0 <= history["padding_share"] < 0.5 and history["precision"] == "fp32"
    # The reported validation loss is the course's token-weighted assistant-only loss.
    examples = [tokenize_conversation(c["messages"], tokenizer, max_length=128) for c in valid_set]
    batches = [AssistantOnlyCollator(tokenizer.pad_token_id)(examples)]
    assert history["valid_loss"][-1] == pytest.approx(evaluate(model, batches), rel=1e-5)
    assert evaluate(model, batches) == pytest.approx(evaluate(model, batches), rel=1e-6)


def test_checkpoint_round_trip_reproduces_logits_and_stops_at_endoftext(smoke_run, tokenizer):
    model, _, output_dir, _ = smoke_run
    reloaded = GPTNeoXForCausalLM.from_pretrained(output_dir).eval()
    assert reloaded.config.eos_token_id == 0
    assert reloaded.generation_config.eos_token_id == [0, 50279, 50280, 50281]  # the end, then each role marker
    ids = torch.tensor([tokenizer("<|prompter|>What is 15% of 80?<|endoftext|><|assistant|>")["input_ids"]])
    with torch.no_grad():
        assert torch.equal(model(ids).logits, reloaded(ids).logits)
    assert (output_dir / "tokenizer.json").exists()
    messages = [{"role": "prompter", "text": "What is 15% of 80?"}]
    assert generate_reply(model, tokenizer, messages, max_new_tokens=12) == generate_reply(
        reloaded, tokenizer, messages, max_new_tokens=12
    )


def _cpu_launch_command() -> list[str]:
    """The command the CLI's docstring gives for two CPU processes, up to ``-m sft_utils.train``, with
    ``accelerate`` run by this Python and a port of its own (so that runs beside it do not collide)."""
    from sft_utils.train import cli

    line = next(li.strip() for li in cli.__doc__.splitlines() if "--mixed_precision no" in li)
    words = shlex.split(line)
    assert words[:2] == ["accelerate", "launch"] and words[-3:-1] == ["-m", "sft_utils.train"], line
    return [sys.executable, "-m", "accelerate.commands.launch", "--main_process_port=29517", *words[2:-3]]


def _run_train(args, history_json, *, processes=1, launch=None, program=("-m", "sft_utils.train")):
    """``python -m sft_utils.train`` (or ``program``) in one process, or under ``launch`` (default: the docstring's
    two CPU processes); returns its history and keeps its output in ``history_json``'s folder, ``run.log``."""
    if launch is None:
        launch = _cpu_launch_command() if processes > 1 else [sys.executable]
    command = [*launch, *program, *args, "--history-json", str(history_json)]
    done = subprocess.run(
        command, check=False, capture_output=True, text=True, timeout=600, env=os.environ | {"OMP_NUM_THREADS": "1"}
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (history_json.parent / "run.log").write_text(done.stdout + done.stderr)
    return json.loads(history_json.read_text())


@pytest.mark.slow  # three launched processes; the smoke run above covers the loop
def test_two_accelerate_processes_give_the_single_process_loss(tmp_path):
    """The same global batch of 4 conversations per step: one process with 2 micro-batches of 2, or two
    processes with one each, started by the command the CLI's docstring gives (``--multi_gpu``: torchrun's
    launcher; without a GPU they run as CPU DDP over gloo; ``--cpu`` would start a single process, MPI aside)."""
    common = ["--smoke", "--data", str(course_data_path()), "--validation-fraction", "0.25", "--steps", "3"]
    common += ["--batch-size", "2", "--max-length", "64", "--eval-every", "3", "--output-dir", "", "--no-progress"]
    common += ["--warmup-steps", "0", "--lr", "3e-3"]  # full steps from the first: later losses show the updates
    single = _run_train([*common, "--grad-accum", "2"], tmp_path / "single.json")
    double = _run_train([*common, "--grad-accum", "1"], tmp_path / "double.json", processes=2)
    assert single["processes"] == 1 and double["processes"] == 2
    assert double["trained_tokens"] == single["trained_tokens"]
    assert double["train_loss"] == pytest.approx(single["train_loss"], rel=1e-5)
    assert double["valid_loss"] == pytest.approx(single["valid_loss"], rel=1e-5)
    assert double["padding_share"] == pytest.approx(single["padding_share"])
    assert double["lr"] == single["lr"] and single["valid_loss"][1] < single["valid_loss"][0] - 0.05


# accelerate (1.15) runs FSDP for GPU processes only; CPU processes launched with configs/fsdp.yaml become
# MULTI_CPU (DDP). This script sets accelerate's state to what a GPU launch gives (FSDP, the plugin read from
# the launcher's settings), so that everything after that choice runs as under FSDP on GPUs: FSDP2's
# fully_shard of each GPT-NeoX layer, the full-logits loss, gathered evaluation and generation, the LoRA merge.
FSDP_ON_CPU = """
import sys
import sft_utils.train.loop as loop
from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin
from sft_utils.train.cli import main
real_accelerator, real_finish = loop.make_accelerator, loop.finish
def sharded(*args):
    accelerator = real_accelerator(*args)
    accelerator.state.distributed_type = DistributedType.FSDP
    accelerator.state.fsdp_plugin = FullyShardedDataParallelPlugin()
    return accelerator
def finish(model, *args):
    print("trained model:", type(model).__name__, flush=True)
    return real_finish(model, *args)
loop.make_accelerator, loop.finish = sharded, finish
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_fsdp_on_two_cpu_processes_gives_the_single_process_losses(tmp_path):
    """configs/fsdp.yaml's FSDP2 on 2 CPU processes (gloo): per-step and validation losses equal one process's
    on the same global batch (relative 1e-6: the sums are reduced in another order), and a LoRA run evaluates,
    generates (held-out exact match) and merges on the sharded model. Saving is left out: on a CPU accelerate's
    gathered state dict holds sharded tensors without storage (docs/performance.md, "FSDP")."""
    script = tmp_path / "fsdp_on_cpu.py"
    script.write_text(FSDP_ON_CPU)
    fsdp_yaml = str(Path(__file__).parents[2] / "configs" / "fsdp.yaml")
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", fsdp_yaml]
    launch += ["--main_process_port=29519"]
    common = ["--smoke", "--data", str(course_data_path()), "--validation-fraction", "0.25", "--steps", "2"]
    common += ["--batch-size", "2", "--max-length", "64", "--eval-every", "2", "--output-dir", "", "--no-progress"]
    single = _run_train([*common, "--grad-accum", "2"], tmp_path / "single.json")
    for name in ("fsdp", "lora"):
        (tmp_path / name).mkdir()
    sharded = _run_train(
        [*common, "--grad-accum", "1"], tmp_path / "fsdp" / "history.json", launch=launch, program=[str(script)]
    )
    assert "trained model: FSDPGPTNeoXForCausalLM" in (tmp_path / "fsdp" / "run.log").read_text()
    assert sharded["processes"] == 2 and sharded["trained_tokens"] == single["trained_tokens"]
    assert sharded["train_loss"] == pytest.approx(single["train_loss"], rel=1e-6)
    assert sharded["valid_loss"] == pytest.approx(single["valid_loss"], rel=1e-6)
    toy = ["--data", "toy:facts", "--max-conversations", "32", "--steps", "2", "--batch-size", "2", "--lora-r", "8"]
    toy += ["--eval-every", "2", "--output-dir", "", "--no-progress"]
    lora = _run_train(toy, tmp_path / "lora" / "history.json", launch=launch, program=[str(script)])
    assert lora["trainable_parameters"] == 6 * 8 * ((128 + 384) + (128 + 128) + (128 + 512) + (512 + 128))
    assert len(lora["exact_match"]) == 2 and lora["valid_loss"][-1] < lora["valid_loss"][0]


def test_an_fsdp_launch_that_accelerate_does_not_shard_warns(monkeypatch):
    from sft_utils.train.distributed import is_sharded
    from sft_utils.train.loop import make_accelerator

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: accelerate may shard here")
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")  # what accelerate launch --config_file configs/fsdp.yaml sets
    with pytest.warns(UserWarning, match="asked for FSDP, but accelerate shards only across GPUs: these cpu processes"):
        accelerator = make_accelerator("fp32", True, TrainConfig.toy())
    assert not is_sharded(accelerator)


@pytest.mark.parametrize(
    "setting, problem",
    [
        ({"steps": 0}, "steps must be an int >= 1, got 0"),
        ({"batch_size": 0}, "batch_size must be an int >= 1"),
        ({"grad_accum": 0}, "grad_accum must be an int >= 1"),
        ({"eval_every": 0}, "eval_every must be an int >= 1"),
        ({"max_length": 1}, "max_length must be an int >= 2"),
        ({"warmup_steps": -5}, "warmup_steps must be an int >= 0"),
        ({"lr": -1e-3}, "lr must be a positive number"),
        ({"lr": float("nan")}, "lr must be a positive number"),
        ({"precision": "fp8"}, "precision must be one of auto, bf16, fp16, fp32"),
        ({"loss": "both"}, "loss must be 'masked' or 'plain'"),
    ],
)
def test_a_bad_setting_is_named_before_any_work(setting, problem):
    """Before: steps=0 or grad_accum=0 died dividing by zero after training, lr < 0 inside AdamW."""
    with pytest.raises(ValueError, match=problem):
        TrainConfig(**setting)
    config = TrainConfig.smoke()
    config.__dict__.update(setting)  # changed after creation: train() checks again
    with pytest.raises(ValueError, match=problem):
        train(config, None, None, [], [])


@pytest.mark.parametrize(
    "args, problem",
    [
        (["--steps", "0"], "--steps must be an int >= 1, got 0"),
        (["--lr=-1e-3"], "--lr must be a positive number"),
        (["--max-length", "1"], "--max-length must be an int >= 2"),
        (["--validation-fraction", "1.5"], "--validation-fraction must be between 0 and 1"),
        (["--max-conversations", "0"], "--max-conversations must be >= 1"),
        (["--steps", "10", "--warmup-steps", "20"], "--warmup-steps (20) is longer than the run (steps=10)"),
        (["--save-every", "5", "--output-dir", ""], "--save-every needs an output_dir"),
        (["--lora-r", "0"], "--lora-r must be an int >= 1, got 0"),
        (["--weight-decay=-0.1"], "--weight-decay must be a number >= 0, got -0.1"),
        (["--max-grad-norm", "0"], "--max-grad-norm must be a positive number, got 0.0"),
        (["--max-grad-norm", "off"], "--max-grad-norm: a number or 'none' (no clipping), got 'off'"),
        (["--resume", "no/such/folder"], "--resume no/such/folder: no such folder"),
    ],
)
def test_the_command_line_names_a_bad_option(args, problem, capsys):
    from sft_utils.train.cli import parse_args

    with pytest.raises(SystemExit) as exit_:
        parse_args(["--smoke", *args])
    assert exit_.value.code == 2
    assert problem in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, problem",
    [
        (["--data", "toy:facts", "--smoke"], "--smoke does not apply to --data toy:TASK (the toy world has its own"),
        (["--data", "toy:facts", "--lang", "de"], "--lang does not apply to --data toy:TASK (the toy world has no"),
        (["--data", "toy:facts", "--lang", ""], "--lang does not apply to --data toy:TASK"),
        (["--data", "toy:"], "--data toy: names no task; give one of last_word, copy, reverse, remember, facts"),
        (["--data", "x.jsonl", "--lang", "de"], "--lang applies to oasst1"),
    ],
)
def test_the_command_line_refuses_an_option_that_would_be_ignored(args, problem, capsys):
    from sft_utils.train.cli import parse_args

    with pytest.raises(SystemExit):
        parse_args(args)
    assert problem in capsys.readouterr().err


def test_the_command_line_has_an_option_for_every_setting():
    from dataclasses import fields

    from sft_utils.train.cli import make_parser, parse_args

    options = {a.dest: a.option_strings for a in make_parser()._actions}
    for field in fields(TrainConfig):
        assert options.get(field.name) == [f"--{field.name.replace('_', '-')}"], field.name
    config = parse_args(["--smoke", "--weight-decay", "0.1", "--max-grad-norm", "0.5"]).config
    assert (config.weight_decay, config.max_grad_norm) == (0.1, 0.5)
    assert parse_args(["--smoke", "--max-grad-norm", "none"]).config.max_grad_norm is None
    assert parse_args(["--smoke"]).config.max_grad_norm == TrainConfig().max_grad_norm == 1.0


def test_the_command_line_reports_bad_data_in_one_line(tmp_path, capsys):
    from sft_utils.train.cli import main

    assert main(["--smoke", "--no-progress", "--output-dir", "", "--data", str(tmp_path / "missing.jsonl")]) == 2
    assert "error: [Errno 2] No such file or directory" in capsys.readouterr().err


def test_a_given_validation_fraction_holds_offline_too():
    """Before: offline, --validation-fraction was silently replaced by the fallback's 0.25."""
    from sft_utils.data.oasst import split_by_tree
    from sft_utils.train.cli import load_data, parse_args

    course = load_conversations(course_data_path())
    _, default_valid, source = load_data(parse_args(["--smoke"]))
    assert source.startswith("OFFLINE FALLBACK") and len(default_valid) == len(split_by_tree(course, 0.25)[1])
    _, valid, _ = load_data(parse_args(["--smoke", "--validation-fraction", "0.6"]))
    assert len(valid) == len(split_by_tree(course, 0.6)[1]) != len(default_valid)


def test_dropping_conversations_truncated_to_nothing_says_so(tokenizer, course_conversations):
    """Never drop (or keep) an example with zero trained tokens without saying so."""
    from sft_utils import tokenize_conversations
    from sft_utils.scale.truncation import trained_target_count

    pattern = r"dropped 1 of 13 conversation\(s\).*max_length=24 \(conversation 'arabic-greeting'\)"
    with pytest.warns(UserWarning, match=pattern):
        examples, _ = tokenize_conversations(course_conversations, tokenizer, max_length=24, drop_untrained=True)
    assert len(examples) == 12 and all(trained_target_count(e) > 0 for e in examples)
    assert all(len(e["input_ids"]) <= 24 for e in examples)


def test_the_command_line_trains_in_any_course_format(capsys):
    from sft_utils import CHATML, LLAMA3, OPEN_ASSISTANT
    from sft_utils.train.cli import FORMATS, parse_args

    assert FORMATS == {"open-assistant": OPEN_ASSISTANT, "chatml": CHATML, "llama-3": LLAMA3}
    assert parse_args(["--chat-format", "chatml"]).chat_format == "chatml"
    assert parse_args([]).chat_format == "open-assistant"
    with pytest.raises(SystemExit):
        parse_args(["--chat-format", "zephyr"])
    assert "invalid choice: 'zephyr'" in capsys.readouterr().err


@pytest.mark.parametrize("quiet", [False, True])
def test_no_progress_silences_every_bar_the_checkpoint_included(quiet, tmp_path, capfd):
    """--no-progress: neither the training bar nor transformers' bar for writing the checkpoint's shards."""
    import transformers

    from sft_utils.train.cli import main

    args = ["--data", "toy:facts", "--max-conversations", "32", "--steps", "2", "--batch-size", "2"]
    before = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.enable_progress_bar()  # as in a fresh process with the bars on
    try:
        assert main([*args, "--eval-every", "2", "--output-dir", str(tmp_path)] + ["--no-progress"] * quiet) == 0
        assert transformers.utils.logging.is_progress_bar_enabled()  # main leaves the switch as it found it
    finally:
        if not before:
            transformers.utils.logging.disable_progress_bar()
    err = capfd.readouterr().err
    if transformers.__version__ >= "5":  # 4.x saves a single file without a bar
        assert ("Writing model shards" in err) is not quiet
    assert ("it/s]" in err or "s/it]" in err) is not quiet
    assert (tmp_path / "model.safetensors").exists()
