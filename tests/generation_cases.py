"""Fixed-seed generations whose tokens and statistics are pinned in
``tests/fixtures/generation_before_speed.json``.

That file was written by this module's :func:`record` running on the engine as it was
before the batch-1 fast paths (commit 69ac810): ``python tests/generation_cases.py`` from a
checkout of that commit. ``tests/test_fast_paths.py`` runs the same cases on the current
engine and requires every token and every statistic to be the same number.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

FIXTURE = Path(__file__).parent / "fixtures" / "generation_before_speed.json"
TEMPERATURES = (0.0, 0.3, 0.5, 0.7, 0.9, 1.1, 1.3, 1.5)

# (name, synthetic spec, params of each row as keyword dicts, new tokens). The vocabularies
# are wider than the engine's row-loop and block widths (4096, 128), as a model's are.
CASES = [
    ("greedy, one row", "synthetic:markov?vocab=5000&seed=3", [{"temperature": 0.0}], 40),
    ("eight temperatures", "synthetic:gaussian?vocab=6000&scale=3.0&seed=1",
     [{"temperature": t, "seed": 0} for t in TEMPERATURES], 24),
    ("sampled, one row", "synthetic:dirichlet?vocab=5000&alpha=0.2&seed=2",
     [{"temperature": 0.8, "seed": 5}], 24),
    ("greedy modes and a filter", "synthetic:markov?vocab=5000&seed=4",
     [{"mode": "greedy", "temperature": 0.7}, {"temperature": 0.0, "top_k": 5},
      {"mode": "hardmax", "seed": 1}, {"temperature": 0.0, "order": "llama.cpp"}], 24),
    ("tied maxima", "synthetic:fixed?logits=2,2,1,-inf,0.5", [{"temperature": 0.0}], 4),
    ("masked tokens, sampled", "synthetic:fixed?logits=2,2,1,-inf,0.5",
     [{"temperature": 0.9, "seed": 3}, {"temperature": 1.0, "seed": 3}], 8),
]

# Engine steps on hard rows (see hard_rows): (name, params of each row, logits dtype).
ENGINE_CASES = [
    ("hard rows, one temperature", [{"temperature": 0.7, "seed": 1}] * 7, "float32"),
    ("hard rows, temperature 1", [{"temperature": 1.0, "seed": 4}] * 7, "float32"),
    ("hard rows, mixed", [{"temperature": t, "seed": 2} for t in (0.0, 0.7, 1.0, 2.5, 0.3,
                                                                    1.0, 0.05)], "float64"),
]


def hard_rows(dtype: str):
    """Seven rows that reach every branch of the engine's arithmetic: three tied maxima,
    masked tokens, a maximum of exactly 0, a spread beyond the dtype, a tail whose
    probabilities underflow, a row with one allowed token."""
    import numpy as np

    width = 5000
    big = np.finfo(dtype).max
    rows = np.random.default_rng(11).normal(0, 3, (7, width)).astype(dtype)
    rows[1, [10, 400, 4999]] = rows[1].max() + 1
    rows[2, ::3] = -np.inf
    rows[3] -= rows[3].max()
    rows[4, 0], rows[4, 1] = big, -big
    rows[5] = -200.0
    rows[5, 17] = 0.0
    rows[6] = -np.inf
    rows[6, 4321] = 1.5
    return rows


def run_engine(rows: list[dict], dtype: str, steps: int = 3) -> list[dict]:
    """Tokens and statistics of a few steps of one Sampler on :func:`hard_rows`."""
    import numpy as np

    from sampler import Sampler, SamplingParams

    engine = Sampler([SamplingParams(**row) for row in rows])
    logits, out = hard_rows(dtype), []
    for step in range(steps):
        tokens, stats = engine.step(np.roll(logits, step, axis=1))
        out.append({"tokens": tokens.tolist(),
                    "stats": [stats.row(i) for i in range(len(rows))]})
    return out


def run(spec: str, rows: list[dict], new_tokens: int) -> list[dict]:
    """Each row's token ids and per-step statistics (the EOS token ignored)."""
    from sampler import SamplingParams
    from sampler.generation.generation_row import GenerationRow
    from sampler.generation.loop import generate
    from sampler.sources.synthetic_spec import parse_synthetic

    source = parse_synthetic(spec)
    generation_rows = [GenerationRow("kalo mesu", SamplingParams(**row)) for row in rows]
    completions = generate(source, generation_rows, max_new_tokens=new_tokens, ignore_eos=True)
    return [{"token_ids": c.token_ids, "steps": c.steps} for c in completions]


def record() -> dict:
    runs = {name: run(spec, rows, n) for name, spec, rows, n in CASES}
    return runs | {name: run_engine(rows, dtype) for name, rows, dtype in ENGINE_CASES}


if __name__ == "__main__":
    FIXTURE.write_text(json.dumps(record(), indent=0) + "\n")
    sys.stdout.write(f"wrote {FIXTURE}\n")
