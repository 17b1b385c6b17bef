"""Top-H against transformers' own ``TopHLogitsWarper`` (transformers 5.x), row by row.

The oracle is the warper itself on the same float32 logits: which tokens it keeps, and the
softmax of what it leaves. Tolerance, from float32 against float64 (not from the differences
seen): the warper computes its entropy terms ``-q log q`` in float32, each off by about
u·(q + |q log q|) (u = 2^-24; ``log q`` near q = 1 is only resolved to u), and sums at most
100 of them (``cumsum`` and ``Categorical.entropy``): its cumulative entropies and bound are
exact to about 102·u·(1 + H), H the head's entropy; ours are float64. Where a token's
cumulative entropy lies within that band of the bound ``top_h · H`` the two may decide it
differently, so such rows are compared on the tokens outside the band only; every other row
must keep exactly the same tokens.
"""

import numpy as np
import pytest

from sampler import SamplingParams, distribution

torch = pytest.importorskip("torch")
logits_process = pytest.importorskip("transformers.generation.logits_process")

U = 2.0**-24
HEAD = 100  # the warper's top_n


def _peer(row: np.ndarray, top_h: float) -> np.ndarray:
    """The warper's kept mask on one float32 row."""
    warper = logits_process.TopHLogitsWarper(top_h=top_h)
    scores = torch.from_numpy(row.astype(np.float32)[None, :].copy())
    out = warper(torch.zeros((1, 1), dtype=torch.long), scores)[0].numpy()
    return np.isfinite(out)


def _ours(row: np.ndarray, top_h: float, **extra) -> np.ndarray:
    params = SamplingParams(top_h=top_h, order=["temperature", "top_h"], **extra)
    return distribution(row.astype(np.float32), params)


def _band(row: np.ndarray, top_h: float) -> tuple[np.ndarray, np.ndarray]:
    """Tokens of the head in sorted order, and which of them sit within float32's error of
    the bound (a transcription of the rule in float64, only to find where the two may
    disagree)."""
    x = row.astype(np.float32).astype(np.float64)
    order = np.argsort(-x, kind="stable")[: min(HEAD, len(x))]
    head = x[order]
    finite = np.isfinite(head)
    log_q = head[finite] - np.logaddexp.reduce(head[finite])
    terms = -np.exp(log_q) * log_q
    entropy = terms.sum()
    margin = (HEAD + 2) * U * (1 + entropy)
    near = np.zeros(len(order), dtype=bool)
    near[np.flatnonzero(finite)] = np.abs(np.cumsum(terms) - top_h * entropy) <= margin
    return order, near


def _random_rows(count: int, seed: int):
    rng = np.random.default_rng(seed)
    for index in range(count):
        vocab = int(rng.choice([2, 7, 99, 100, 101, 257, 3000]))
        scale = rng.uniform(0.3, 6.0)
        row = rng.normal(0, scale, vocab)
        if index % 3 == 0:
            row[rng.integers(vocab)] += rng.uniform(2, 12)  # a peaked head
        yield row, float(rng.choice([0.05, 0.2, 0.4, 0.6, 0.8, 0.95, 1.0]))


def test_random_rows_keep_what_transformers_keeps():
    compared = boundary = 0
    for row, top_h in _random_rows(400, seed=17):
        ours, theirs = _ours(row, top_h) > 0, _peer(row, top_h)
        order, near = _band(row, top_h)
        if near.any():  # compare outside the band only
            boundary += 1
            outside = np.ones(len(row), dtype=bool)
            outside[order[near]] = False
            np.testing.assert_array_equal(ours[outside], theirs[outside])
            continue
        compared += 1
        np.testing.assert_array_equal(ours, theirs, f"top_h={top_h}, vocab={len(row)}")
        kept = np.flatnonzero(theirs)
        peer_probs = np.exp(row[kept] - np.logaddexp.reduce(row[kept].astype(np.float64)))
        # ours are float32 for float32 logits: exp(x - max) in float32 is off by about
        # u·|x - max| relative (|x - max| < 40 here: 2.4e-6), then rounded to float32
        np.testing.assert_allclose(_ours(row, top_h)[kept], peer_probs, rtol=1e-5)
    # at top_h = 1 the bound is H itself, which the last tokens' cumulative entropy meets
    # within rounding: those rows (about one in seven here) are compared outside the band
    assert compared >= 300, (compared, boundary)


def test_masked_tokens_fewer_finite_than_the_head_and_one_token_rows():
    rng = np.random.default_rng(5)
    cases = []
    for finite in (1, 3, 40, 99, 100, 150):
        row = np.full(400, -np.inf)
        row[rng.choice(400, finite, replace=False)] = rng.normal(0, 2.0, finite)
        cases.append(row)
    cases += [np.array([1.5]), np.array([0.0, -np.inf]), np.array([2.0, 1.0])]
    for row in cases:
        for top_h in (0.1, 0.5, 1.0):
            _, near = _band(row, top_h)
            if near.any():
                continue
            ours, theirs = _ours(row, top_h) > 0, _peer(row, top_h)
            np.testing.assert_array_equal(ours, theirs, f"top_h={top_h}, row={row[:5]}")
            assert ours.sum() >= 1


def test_tied_tokens_are_kept_together_around_the_peers_choice():
    # transformers' topk orders ties arbitrarily and may keep part of a tie; ours keeps the
    # whole tie (as every truncation stage here): the peer's kept set plus the rest of the
    # tie at its last kept logit, never anything else
    rng = np.random.default_rng(8)
    checked = 0
    for _ in range(200):
        values = np.round(rng.normal(0, 1.5, 60), 0)  # few distinct values: many ties
        top_h = float(rng.uniform(0.1, 1.0))
        ours, theirs = _ours(values, top_h) > 0, _peer(values, top_h)
        _, near = _band(values, top_h)
        if near.any():
            continue
        checked += 1
        assert (theirs & ~ours).sum() == 0
        lowest = values[theirs].min()
        np.testing.assert_array_equal(ours, theirs | (values == lowest))
        for value in np.unique(values):
            group = ours[values == value]
            assert group.all() or not group.any()
    assert checked >= 150


def test_min_tokens_to_keep_holds():
    row = np.array([8.0, 1.0, 0.5, 0.0, -1.0])
    assert (_ours(row, 0.05) > 0).sum() == 1
    assert (_ours(row, 0.05, min_tokens_to_keep=3) > 0).sum() == 3


def test_top_h_runs_after_temperature_in_the_hf_preset():
    # transformers' _get_logits_processor appends TopHLogitsWarper right after temperature
    stages = SamplingParams(top_h=0.4).stages
    assert stages[stages.index("temperature") + 1] == "top_h"
