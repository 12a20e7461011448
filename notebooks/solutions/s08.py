"""Solutions to notebook 08_finetune_pythia's exercises."""

import sft_utils
from sft_utils.course.exercises import COUNTS_08_1


def ex_08_1() -> int:
    return sum(COUNTS_08_1)  # the step's trained targets: same gradient as one big batch


def ex_08_2() -> int:
    tokenizer = sft_utils.load_tokenizer(verbose=False)
    return tokenizer.convert_tokens_to_ids("<|assistant|>")  # 50280
