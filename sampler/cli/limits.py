"""What one logged run may ask for, checked before anything runs or is recorded.

Every limit says why it exists in its message. Sizes are checked from the config alone, before
a model loads or a row is planned (a billion planned rows take minutes and gigabytes just to
list); whether the prompts fit the model's context, and logit-bias tokens its vocabulary, is
checked once the source is loaded and before the run is recorded, so a run that cannot start
never appears in the run log.
"""

from __future__ import annotations

from typing import Any

from sampler.errors import InvalidInputError

__all__ = ["MAX_PROMPT_CHARS", "MAX_ROWS", "MAX_TOKEN_STEPS", "check_fits", "check_size"]

# Every finished row is kept in memory for the summary or --json, and stored in the run log.
MAX_ROWS = 10_000
# Every step's statistics are kept with its row (about 1 KB each in memory): 2 GB at most.
MAX_TOKEN_STEPS = 2_000_000
# A prompt is stored in the run's config and again in every row.
MAX_PROMPT_CHARS = 100_000


def check_size(kind: str, config: Any) -> None:
    """Refuse a ``config`` whose rows, token steps or prompts exceed the limits above."""
    for number, prompt in enumerate(config.prompts, start=1):
        if len(prompt) > MAX_PROMPT_CHARS:
            raise InvalidInputError(
                f"prompt {number} is {len(prompt)} characters: at most {MAX_PROMPT_CHARS} "
                "(a prompt is stored with the run and with every row of it)"
            )
    if kind == "compare":
        rows, shape = 1 + config.samples, f"greedy + {config.samples} samples"
    else:
        rows = len(config.prompts) * len(config.temperatures) * config.samples
        shape = (
            f"{len(config.prompts)} prompts × {len(config.temperatures)} temperatures × "
            f"{config.samples} samples"
        )
    if rows > MAX_ROWS:
        raise InvalidInputError(
            f"{rows} rows ({shape}) are too many: at most {MAX_ROWS} per run (every row is "
            "kept in memory and in the run log); split the run or lower --samples"
        )
    steps = rows * config.max_new_tokens
    if steps > MAX_TOKEN_STEPS:
        raise InvalidInputError(
            f"{rows} rows × max_new_tokens={config.max_new_tokens} = {steps} token steps: at "
            f"most {MAX_TOKEN_STEPS} per run (each step's statistics are kept, ~1 KB each); "
            "lower --max-new-tokens or the number of rows"
        )


def check_fits(rows: Any, source: Any, chat: bool, max_new_tokens: int) -> None:
    """Refuse what only the loaded source can judge: a ``logit_bias`` token outside its
    vocabulary, a constraint on a source without a vocabulary the matcher can read, prompts
    that do not fit its context with ``max_new_tokens``."""
    from sampler.engine.constraints.matcher import row_constraints
    from sampler.generation.loop import encode_prompts

    for row in rows:
        outside = [token for token in row.params.logit_bias if token >= source.vocab_size]
        if outside:
            raise InvalidInputError(
                f"logit_bias token {min(outside)} is outside the vocabulary of "
                f"{source.name} (ids 0..{source.vocab_size - 1})"
            )
    row_constraints(source, list({row.params: None for row in rows}))
    distinct = list({row.prompt: row for row in rows}.values())
    encode_prompts(source, distinct, chat, max_new_tokens)
