"""Toy-world runs for the loop's tests: a random-weight pythia-14m trained by ``train()`` for a few steps."""

import pytest

from sft_utils.data.toy import toy_conversations
from sft_utils.models.pythia import load_model
from sft_utils.train import train


@pytest.fixture(scope="session")
def toy_data():
    """(training, held-out) conversations of the toy task ``facts``: 200 and 16."""
    return toy_conversations("facts", "train", 200), toy_conversations("facts", "held-out", 16)


@pytest.fixture(scope="session")
def run_toy(tokenizer):
    """``run_toy(config, data, **train_kwargs)``: ``train()`` on a fresh random-weight model of ``config.model``."""

    def run(config, data, **kwargs):
        model = load_model(config.model, random_weights=True, verbose=False)
        return train(config, model, tokenizer, *data, progress=False, **kwargs)

    return run
