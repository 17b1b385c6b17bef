"""A logged run as tables for notebooks: pandas DataFrames and the Arrow batches behind them.

Two tables describe a run. *Completions*, one row per generated completion: the run id, row
index, prompt, sample index, temperature, mode, seed, text, token count, finish reason, prompt
token count, then every sampling setting of the row (one column each, ``top_k``, ``min_p``, ...)
and what the run added to the row (``extra_*``: a session's ``divergence_step``, a sweep's
``first_step_top``, ``generate --logprobs``' ``logprobs``; ``rewinds`` where phrases were
banned, NULL in the rows that banned none). *Steps*, one row per generated token: row index,
step, token id, the base distribution's argmax and every
:class:`~sampler.engine.stats.StepStats` column, the stage telemetry included (NaN where the
stage was off). The run log stores token ids, not token
texts: a completion's text is in the completions table.

Steps are read in chunks of ``chunk_rows`` (one SQLite cursor, ``fetchmany``), so a large run
is never held in memory by :func:`iter_step_batches`; :mod:`sampler.runlog.parquet` writes the
same batches to Parquet. pandas and pyarrow are the ``data`` extra, imported here only.

Examples
--------
>>> import pathlib, tempfile
>>> from sampler.runlog.store import STEP_STATS, RunStore
>>> with tempfile.TemporaryDirectory() as tmp, RunStore(pathlib.Path(tmp) / "r.db") as store:
...     run = store.create_run("sweep", "toy", "f00d", {}, {}, 1)
...     steps = [dict.fromkeys(STEP_STATS, 0.5) | {"token": t} for t in (7, 8)]
...     store.add_completion(run, 0, {"prompt": "Hi", "sample": 0, "temperature": 0.7,
...         "mode": "sample", "params": {"top_k": 5, "seed": 3}, "text": " yo",
...         "token_ids": [7, 8], "finish_reason": "length", "prompt_tokens": 1, "steps": steps})
...     rows, tokens = completions_frame(store, run), steps_frame(store, run, ["step", "token"])
>>> rows[["seed", "temperature", "token_count", "top_k"]].to_dict("records")
[{'seed': 3, 'temperature': 0.7, 'token_count': 2, 'top_k': 5}]
>>> tokens.values.tolist()
[[0, 7], [1, 8]]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from sampler.errors import InvalidInputError
from sampler.runlog.codec import dumps
from sampler.runlog.connection import damaged, sqlite_errors
from sampler.runlog.schema import STEP_STATS
from sampler.runlog.store import RunStore

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = [
    "CHUNK_ROWS",
    "STEP_COLUMNS",
    "completions_frame",
    "completions_table",
    "iter_step_batches",
    "iter_step_frames",
    "require_data_packages",
    "step_schema",
    "steps_frame",
]

# 50,000 steps of 21 numbers are ~10 MB as Arrow columns: small next to any notebook, large
# enough that the per-chunk cost (one Python-to-Arrow conversion per column) is negligible.
CHUNK_ROWS = 50_000
STEP_COLUMNS = ("row_index", "step", "token", "base_argmax", *STEP_STATS)
# Integer columns that may be NULL (base_argmax before migration 002): pandas' nullable Int64,
# so every chunk of every run has the same dtypes.
_NULLABLE_INTS = ("base_argmax", "kept_tokens")
_BASE_COLUMNS = (
    "run_id", "row_index", "prompt", "sample", "temperature", "mode", "seed", "text",
    "token_count", "finish_reason", "prompt_tokens",
)
_INSTALL_HINT = "pip install -e '.[data]'"


def require_data_packages() -> tuple[Any, Any]:
    """``(pandas, pyarrow)``, or a one-line error saying how to install them."""
    try:
        import pandas
        import pyarrow
    except ImportError as error:
        raise InvalidInputError(
            f"DataFrames and Parquet need pandas and pyarrow ({error.name} is not installed); "
            f"install them with: {_INSTALL_HINT}"
        ) from None
    return pandas, pyarrow


def _step_type(name: str) -> pa.DataType:
    import pyarrow as pa

    if name in ("row_index", "step", "token", *_NULLABLE_INTS):
        return pa.int64()
    return pa.float64()


def step_schema(columns: Sequence[str] = STEP_COLUMNS) -> pa.Schema:
    """The Arrow schema of the steps table (of ``columns`` of it)."""
    _, pa = require_data_packages()
    return pa.schema([(name, _step_type(name)) for name in columns])


def _column(path: Any, name: str, values: Sequence[Any], kind: pa.DataType, where: str) -> Any:
    """One Arrow column; a stored value of another type (a file changed by hand) is damage."""
    import pyarrow as pa

    try:
        if pa.types.is_integer(kind) and not all(type(v) is int for v in values if v is not None):
            raise ValueError  # pyarrow would truncate 2.5 to 2 without a word
        return pa.array(values, type=kind)
    except (TypeError, ValueError):  # pyarrow's ArrowTypeError and ArrowInvalid
        bad = next((v for v in values if not _fits(v, kind)), "a value")
        raise damaged(path, f"{where} column {name} holds {bad!r}, not a {kind}") from None


def _fits(value: Any, kind: pa.DataType) -> bool:
    import pyarrow as pa

    if value is None:
        return True
    if pa.types.is_integer(kind):
        return type(value) is int
    try:
        pa.array([value], type=kind)
    except (TypeError, ValueError):
        return False
    return True


def _step_columns(columns: Sequence[str] | None) -> tuple[str, ...]:
    if columns is None:
        return STEP_COLUMNS
    if isinstance(columns, str) or not columns:
        raise InvalidInputError("steps columns must be a non-empty list of column names")
    if unknown := [name for name in columns if name not in STEP_COLUMNS]:
        raise InvalidInputError(
            f"step column {unknown[0]!r} is unknown; choose from {', '.join(STEP_COLUMNS)}"
        )
    return tuple(columns)


def iter_step_batches(
    store: RunStore,
    run_id: str,
    columns: Sequence[str] | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> Iterator[pa.RecordBatch]:
    """A run's steps in row and step order as Arrow batches of at most ``chunk_rows`` rows.

    ``run_id`` is an id, a unique prefix or ``latest``; ``columns`` a subset of
    :data:`STEP_COLUMNS` (default: all). Only one batch is held at a time.
    """
    _, pa = require_data_packages()
    names = _step_columns(columns)
    if chunk_rows < 1:
        raise InvalidInputError(f"chunk_rows {chunk_rows} is not a positive number of rows")
    full_id = store.resolve(run_id)
    schema = step_schema(names)
    where = f"a step of run {full_id}:"
    # one statement, read with fetchmany: one consistent snapshot of the run, a chunk at a time
    with sqlite_errors(store.path):
        cursor = store._conn.execute(  # this module is the run log's own, as pages.py is
            f"SELECT {', '.join(names)} FROM steps WHERE run_id = ? ORDER BY row_index, step",
            (full_id,),
        )
        while rows := cursor.fetchmany(chunk_rows):
            values = list(zip(*rows, strict=True))
            yield pa.RecordBatch.from_arrays(
                [
                    _column(store.path, name, column, schema.field(name).type, where)
                    for name, column in zip(names, values, strict=True)
                ],
                schema=schema,
            )


def _to_pandas(batch: pa.RecordBatch | pa.Table) -> pd.DataFrame:
    frame = batch.to_pandas()
    for name in _NULLABLE_INTS:
        if name in frame.columns:
            frame[name] = frame[name].astype("Int64")
    return frame


def iter_step_frames(
    store: RunStore,
    run_id: str,
    columns: Sequence[str] | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> Iterator[pd.DataFrame]:
    """:func:`steps_frame` in DataFrames of at most ``chunk_rows`` steps, for runs too large
    to hold: aggregate each chunk, then combine."""
    for batch in iter_step_batches(store, run_id, columns, chunk_rows):
        yield _to_pandas(batch)


def steps_frame(
    store: RunStore, run_id: str, columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """All steps of a run, one row per generated token (``columns``: a subset to read)."""
    _, pa = require_data_packages()
    names = _step_columns(columns)
    batches = list(iter_step_batches(store, run_id, names))
    return _to_pandas(pa.Table.from_batches(batches, schema=step_schema(names)))


def _completion_record(run_id: str, row: dict) -> dict[str, Any]:
    settings = {k: v for k, v in row["params"].items() if k not in _BASE_COLUMNS}
    extra = {f"extra_{k}": v for k, v in row["extra"].items()}
    if "rewinds" in row:  # phrases were banned: JSON text, as the run log keeps it
        extra["rewinds"] = row["rewinds"]
    return {
        "run_id": run_id,
        "row_index": row["row_index"],
        "prompt": row["prompt"],
        "sample": row["sample"],
        "temperature": row["temperature"],
        "mode": row["mode"],
        "seed": row["params"].get("seed"),
        "text": row["text"],
        "token_count": len(row["token_ids"]),
        "finish_reason": row["finish_reason"],
        "prompt_tokens": row["prompt_tokens"],
    } | settings | extra


def _value_type(values: list[Any]) -> tuple[pa.DataType, bool]:
    """The Arrow type of a settings column and whether its values are stored as JSON text.

    Lists and objects (``logit_bias``, ``order``) and columns of mixed kinds become JSON text:
    Parquet needs one type per column.
    """
    import pyarrow as pa

    kinds = {type(v) for v in values if v is not None}
    if kinds <= {bool} and kinds:
        return pa.bool_(), False
    if kinds <= {int}:
        return pa.int64(), False  # an all-NULL column too
    if kinds <= {int, float}:
        return pa.float64(), False
    if kinds <= {str}:
        return pa.string(), False
    return pa.string(), True


def completions_table(store: RunStore, run_id: str) -> pa.Table:
    """A run's completions as one Arrow table (their steps are not read)."""
    _, pa = require_data_packages()
    full_id = store.resolve(run_id)
    records = [_completion_record(full_id, row) for row in store.iter_completions(full_id, False)]
    names = list(_BASE_COLUMNS)
    for record in records:
        names += [name for name in record if name not in names]
    fixed = {
        "run_id": pa.string(), "row_index": pa.int64(), "prompt": pa.string(),
        "sample": pa.int64(), "temperature": pa.float64(), "mode": pa.string(),
        "text": pa.string(), "token_count": pa.int64(), "finish_reason": pa.string(),
        "prompt_tokens": pa.int64(),
    }
    arrays, fields = [], []
    for name in names:
        values = [record.get(name) for record in records]
        kind, as_json = (fixed[name], False) if name in fixed else _value_type(values)
        if as_json:
            values = [None if v is None else dumps(v) for v in values]
        arrays.append(_column(store.path, name, values, kind, f"a completion of run {full_id}:"))
        fields.append(pa.field(name, kind))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def completions_frame(store: RunStore, run_id: str) -> pd.DataFrame:
    """A run's completions, one row per generated completion (see the module's columns).

    Settings that are lists or objects (``order``, ``logit_bias``) are JSON text:
    ``json.loads`` gives them back.
    """
    frame = completions_table(store, run_id).to_pandas()
    for name in ("sample", "seed", "prompt_tokens"):
        frame[name] = frame[name].astype("Int64")  # NULL for rows that have none
    return frame

