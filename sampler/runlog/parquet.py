"""A logged run as two Parquet files (``sampler export RUN --format parquet --out DIR``).

``RUN-completions.parquet`` and ``RUN-steps.parquet`` (RUN: a safe form of the run id, letters,
digits, ``-`` and ``_``) hold the tables of :mod:`sampler.runlog.frames`, written into the
folder the user named and nowhere else. Steps are read and written one chunk at a time, one
Parquet row group per chunk, so a run of any size is never held in memory. Both files are
written under temporary names in the folder and renamed only when both are whole: a failure
(a damaged run log, a full disk) leaves no file behind, and an earlier export of the run as it
was.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from sampler.errors import InvalidInputError
from sampler.files import check_writable_folder, make_folder, safe_file_name
from sampler.runlog.connection import sqlite_errors
from sampler.runlog.frames import (
    CHUNK_ROWS,
    completions_table,
    iter_step_batches,
    require_data_packages,
    step_schema,
)
from sampler.runlog.store import RunStore

__all__ = ["ParquetExport", "export_parquet"]

ParquetExport = dict[str, tuple[Path, int]]


def _make_folder(folder: Path) -> list[Path]:
    """Create ``folder`` (and missing parents); return the folders created, deepest first."""
    if folder.exists() and not folder.is_dir():
        raise InvalidInputError(f"export folder {str(folder)!r} is a file: name a folder")
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    check_writable_folder(folder)
    make_folder(folder, "export")
    return missing


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def export_parquet(
    store: RunStore, run_id: str, out_dir: str | os.PathLike[str], chunk_rows: int = CHUNK_ROWS
) -> ParquetExport:
    """Write run ``run_id`` (an id, a unique prefix or ``latest``) as Parquet into ``out_dir``.

    Returns ``{"completions": (path, rows), "steps": (path, rows)}``. ``out_dir`` is made if
    missing; an existing export of the run there is replaced only when the new one is whole.
    """
    require_data_packages()
    import pyarrow.parquet as pq

    full_id = store.resolve(run_id)  # an unknown run: refused before the disk is touched
    folder = Path(out_dir)
    created = _make_folder(folder)
    name = safe_file_name(full_id)
    targets = {table: folder / f"{name}-{table}.parquet" for table in ("completions", "steps")}
    temporaries: dict[str, Path] = {}
    counts = {}
    try:
        for table, target in targets.items():
            handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=folder)
            os.close(handle)
            temporaries[table] = Path(temporary)
        # one read transaction: both files show the run at one moment, even while it runs
        with sqlite_errors(store.path):
            store._conn.execute("BEGIN")
        try:
            completions = completions_table(store, full_id)
            pq.write_table(completions, temporaries["completions"])
            counts["completions"] = completions.num_rows
            counts["steps"] = 0
            with pq.ParquetWriter(temporaries["steps"], step_schema()) as writer:
                for batch in iter_step_batches(store, full_id, chunk_rows=chunk_rows):
                    writer.write_batch(batch)  # a row group per chunk
                    counts["steps"] += batch.num_rows
        finally:
            with contextlib.suppress(Exception):
                store._conn.execute("COMMIT")
        for table, target in targets.items():
            os.chmod(temporaries[table], 0o666 & ~_umask())  # mkstemp's 0600 is for secrets
            os.replace(temporaries.pop(table), target)
    except OSError as error:
        raise InvalidInputError(
            f"cannot write the export into {str(folder)!r}: {error.strerror or error}; "
            "choose a writable folder with free space (nothing was written)"
        ) from None
    finally:
        for temporary in temporaries.values():
            temporary.unlink(missing_ok=True)
        if temporaries:  # failed: the folders this export made go too, if still empty
            for made in created:
                with contextlib.suppress(OSError):
                    made.rmdir()
    return {table: (target, counts[table]) for table, target in targets.items()}
