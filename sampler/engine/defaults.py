"""The defaults every command shares, defined once.

One rule each, the same in ``generate``, ``compare``, ``sweep``, ``explore``, ``divergence``,
``chain``, ``analyze --prompt`` and the page of ``sampler serve`` (and its JSON API):

* **Temperature: 1.0**, the model's own distribution. τ = 1 is temperature switched off, as
  every other stage's default is off, so what a command shows with no flag is the model itself
  and each flag's effect is measured from there. (``sweep``, ``analyze`` and ``softmax`` take a
  list of temperatures to compare, not one default.)
* **Seed: 0**: the same command gives the same output, today and on another machine (the
  draws are keyed by seed, prompt and sample). ``--seed random`` draws a fresh seed and says
  which, so that run can be repeated too.
* **Chat template: the model's own**: a model that has one (an instruct model such as the
  default SmolLM2-135M-Instruct) gets its prompt as one user turn of it; ``--raw`` (also
  spelled ``--no-chat-template``) sends the prompt as it is. An instruct model answers
  instructions ("Explain why the sky is blue.") well in its template and continues bare text
  ("The capital of France is") better without it. The page's "chat template" box starts as
  the model's default. The rule is :func:`sampler.sources.base.use_chat`, which every
  command and the server call.

>>> DEFAULT_TEMPERATURE, DEFAULT_SEED
(1.0, 0)
"""

from __future__ import annotations

import secrets

from sampler.engine.stages import SETTINGS
from sampler.errors import InvalidInputError

__all__ = ["DEFAULT_SEED", "DEFAULT_TEMPERATURE", "RANDOM_SEED", "parse_seed"]

DEFAULT_TEMPERATURE: float = SETTINGS["temperature"].off  # 1.0: the stage switched off
DEFAULT_SEED = 0
RANDOM_SEED = "random"  # the word that asks for a drawn seed
_SEED_MAX = 2**63 - 1  # stored in SQLite and numpy int64


def parse_seed(text: str) -> tuple[int, bool]:
    """A seed from the command line: an integer 0..2**63-1, or ``random`` for a drawn one.

    Returns the seed and whether it was drawn. A drawn seed is below 2**31 (short to retype).
    """
    if text.strip().lower() == RANDOM_SEED:
        return secrets.randbelow(2**31), True
    try:
        seed = int(text)
    except ValueError:
        seed = -1
    if not 0 <= seed <= _SEED_MAX:
        raise InvalidInputError(
            f"--seed {text!r} is not allowed: give an integer 0..{_SEED_MAX} or '{RANDOM_SEED}'"
        )
    return seed, False
