"""The sampling engine: logits in, one token and exact statistics out, per row.

One step, for every group of rows that share a chain order:

1. validate the logits (finite or ``-inf``; each row needs one finite logit);
2. run the chain: each stage is a pure function of (candidates, per-row parameters), in the
   row's order (``SamplingParams.order``);
3. greedy and hardmax rows keep only their maxima (the τ → 0 limit);
4. put the candidates in token-id order and draw by inverse CDF with one uniform number
   from the row's own random stream (greedy rows take the lowest-id maximum);
5. optionally compute :class:`~sampler.engine.stats.StepStats`.

(Greedy rows with no other stage on take a shortcut to the same numbers: engine.greedy. Rows
that resample a grammar as llama.cpp does run the chain twice and may draw twice:
engine.resample.)

Examples
--------
>>> import numpy as np
>>> from sampler import Sampler, SamplingParams
>>> sampler = Sampler([SamplingParams(temperature=0), SamplingParams(seed=7, top_k=2)])
>>> tokens, stats = sampler.step(np.array([[3.0, 1.0, 0.2], [3.0, 1.0, 0.2]]))
>>> int(tokens[0]), int(stats.kept_tokens[1])
(0, 2)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike

from sampler.engine.chain import chain_groups, run_group
from sampler.engine.filters.adaptive_p import chosen_prior
from sampler.engine.filters.dry import TokenTexts
from sampler.engine.greedy import greedy_only, greedy_step
from sampler.engine.inputs import History, as_batch, as_history, as_params, as_state
from sampler.engine.law import distribution, final_groups, xtc_chance
from sampler.engine.parallel import map_parallel, slices
from sampler.engine.params import SamplingParams
from sampler.engine.resample import resampled_draw
from sampler.engine.rows import RowParams
from sampler.engine.state import copy_state, matcher_array, next_state
from sampler.engine.stats import StepStats, step_stats
from sampler.errors import InvalidInputError

# distribution and its helpers live in sampler.engine.law; importable from here as before
__all__ = ["Sampler", "distribution", "final_groups", "xtc_chance"]


class Sampler:
    """Draws one token per row per step, each row with its own parameters and random stream.

    Parameters
    ----------
    params
        One :class:`SamplingParams` per row, or one for every row of any batch.
    row_keys
        Per row, a tuple of integers mixed with the row's seed into its random stream
        (``SeedSequence([seed, *key])``). Default: ``()`` for a list of params, so a row's
        stream depends on its seed alone and a row draws the same tokens wherever it sits in
        any batch; ``(i,)`` for row ``i`` when one params serves the whole batch.
    stats
        Compute :class:`StepStats` (entropies, surprisal, kept mass, KL) at each step.
    state
        Each row's state before the first step (``{"mirostat_mu": [B]}``); default: fresh
        (μ = 2τ). :attr:`state` gives it back after each step.
    vocabulary
        The model's token texts (``sampler.sources.base.token_texts(source)``): DRY finds
        its sequence breakers
        in them.
    constraints
        Per row, the matcher of its grammar
        (:func:`sampler.engine.constraints.matcher.row_constraints`), ``None`` where it has none; it
        takes each drawn token.
    """

    def __init__(
        self,
        params: SamplingParams | Sequence[SamplingParams],
        row_keys: Sequence[Sequence[int]] | None = None,
        stats: bool = True,
        state: Mapping[str, ArrayLike] | None = None,
        vocabulary: TokenTexts | None = None,
        constraints: Sequence[object | None] | None = None,
    ) -> None:
        self._shared = params if isinstance(params, SamplingParams) else None
        if self._shared is None:
            listed = list(params)  # once: a generator would be empty the second time
            self._params: list[SamplingParams] | None = as_params(listed, len(listed))
        else:
            self._params = None
        self._row_keys = None if row_keys is None else [tuple(key) for key in row_keys]
        self.stats = stats
        self._streams: list[np.random.Generator] | None = None
        self._rows: RowParams | None = None
        self._state: dict[str, np.ndarray] = {}
        self._given_state = state
        self._vocabulary = vocabulary
        self._constraints = None if constraints is None else matcher_array(list(constraints))
        self._work_width = -1
        self._work_items: list[tuple[tuple[str, ...], np.ndarray, bool]] = []

    def _setup(self, batch: int) -> None:
        params = self._params or [self._shared] * batch
        if len(params) != batch:
            raise InvalidInputError(
                f"logits have {batch} rows but the sampler has {len(params)} SamplingParams"
            )
        keys = self._row_keys
        if keys is None:
            keys = [(i,) for i in range(batch)] if self._shared else [()] * batch
        if len(keys) != batch:
            raise InvalidInputError(f"{len(keys)} row keys for a batch of {batch} rows")
        self._params = params
        self._rows = RowParams.from_params(params).with_vocabulary(self._vocabulary)
        self._state = as_state(self._given_state, self._rows)
        if self._constraints is not None:
            if len(self._constraints) != batch:
                raise InvalidInputError(f"{len(self._constraints)} constraints for {batch} rows")
            self._state["grammar_matcher"] = self._constraints
        self._coin_rows = self._rows.on("xtc_probability")
        self._resampling = np.array([p.resamples for p in params], dtype=bool)
        self._streams = [
            np.random.Generator(
                np.random.PCG64(np.random.SeedSequence(None if p.seed is None else [p.seed, *key]))
            )
            for p, key in zip(params, keys, strict=True)
        ]

    def _work(self, width: int) -> list[tuple[tuple[str, ...], np.ndarray, bool]]:
        """The groups of rows that share a chain order, sliced for the cores (cached), each
        with whether it takes the greedy fast path (:mod:`sampler.engine.greedy`): a group's
        greedy rows are set apart for it (a row's numbers do not depend on its batch)."""
        if self._work_width != width:
            params = self._params
            assert params is not None
            self._work_items = []
            for stages, members in chain_groups(params):
                fast = np.array([greedy_only([params[row]]) for row in members])
                for part, greedy in ((members[fast], True), (members[~fast], False)):
                    if len(part):
                        self._work_items += [(stages, p, greedy) for p in slices(part, width)]
            self._work_width = width
        return self._work_items

    def step(
        self, logits: ArrayLike, history: History = None
    ) -> tuple[np.ndarray, StepStats | None]:
        """Choose one token per row.

        Returns
        -------
        tokens : numpy.ndarray
            ``[B]`` token ids.
        stats : StepStats or None
            Per-row statistics (``None`` when the sampler was made with ``stats=False``).
        """
        raw, _, peak = as_batch(logits)
        if self._streams is None:
            self._setup(raw.shape[0])
        assert self._rows is not None and self._streams is not None and self._params
        if raw.shape[0] != len(self._streams):
            raise InvalidInputError(
                f"logits have {raw.shape[0]} rows but the sampler has {len(self._streams)}"
            )
        history_rows = as_history(history, raw.shape[0], raw.shape[1])
        # Every row consumes one number per step, greedy or not, so streams stay aligned; a
        # row with XTC first draws its coin for the step. A row that resamples then takes its
        # second pass's [coin and] number, every step, whether it draws again or not: so its
        # stream's use depends on its settings alone, never on the draw.
        coins, uniforms = np.full((2, raw.shape[0]), np.nan), np.full((2, raw.shape[0]), np.nan)
        for row, stream in enumerate(self._streams):
            for number in range(1 + self._resampling[row]):
                if self._coin_rows[row]:
                    coins[number, row] = stream.random()
                uniforms[number, row] = stream.random()
        work = self._work(raw.shape[1])
        fast = [item for item in work if item[2]]
        general = [item for item in work if not item[2]]
        if general:
            rows = self._rows.with_history(history_rows).with_state(
                {**self._state, "xtc_coin": coins[0]}
            )
            second_rows = rows.with_state({**rows.state, "xtc_coin": coins[1]})

        def run(item: tuple[tuple[str, ...], np.ndarray, bool]) -> tuple:
            stages, members, greedy = item
            if greedy:  # no stateful stage is on: no telemetry to report
                part = raw if len(members) == len(raw) else raw[members]
                chosen, stats = greedy_step(part, peak[members], {}, self.stats)
                return chosen, np.ones(len(members)), np.full(len(members), np.nan), stats
            if self._resampling[members[0]]:  # chain_groups sets resampling rows apart
                draw = resampled_draw(
                    raw, rows, second_rows, stages, members, uniforms, peak, self.stats
                )
                return draw.tokens, draw.probability, draw.prior, draw.stats
            group = run_group(raw, rows, stages, members)
            columns = group.final.draw(uniforms[0, group.members])
            chosen = group.final.token_ids(columns)
            probability = group.final.chosen_probability(columns)
            prior = chosen_prior(group.notes, chosen)
            if not self.stats:
                return chosen, probability, prior, None
            telemetry = {**group.notes, **group.rows.state}
            stats = step_stats(
                group.raw, peak[group.members], group.tempered, group.final, columns, chosen,
                telemetry,
            )
            return chosen, probability, prior, stats

        tokens = np.empty(raw.shape[0], dtype=np.int64)
        probabilities, priors = np.empty(raw.shape[0]), np.empty(raw.shape[0])
        parts = []
        # the greedy fast path costs less than handing it to a thread: it runs here, and the
        # other groups run as they would without it (on the cores when there are several)
        done = [
            *zip(fast, map(run, fast), strict=True),
            *zip(general, map_parallel(run, general), strict=True),
        ]
        for (_, members, _), (chosen, probability, prior, stats) in done:
            tokens[members], probabilities[members], priors[members] = chosen, probability, prior
            parts.append((members, stats))
        self._state = next_state(self._state, self._rows, probabilities, priors, tokens)
        if not self.stats:
            return tokens, None
        return tokens, StepStats.concatenate(parts, raw.shape[0])

    @property
    def state(self) -> dict[str, np.ndarray]:
        """Each row's state for the next step (mirostat's μ, adaptive-p's sums; NaN on rows
        without them), a copy:
        ``distribution(logits, params, state=sampler.state)`` is the next draw's exact law."""
        if self._streams is None:
            if self._params is None:
                raise InvalidInputError(
                    "a sampler made with one SamplingParams for any batch has no state before "
                    "its first step: give one SamplingParams per row"
                )
            self._setup(len(self._params))
        return copy_state(self._state)
