"""The run log: a SQLite store, its schema and migrations, path checks and export.

A run as pandas DataFrames (the ``data`` extra): ``completions_frame``, ``steps_frame`` and
``iter_step_frames`` of :mod:`sampler.runlog.frames`, also importable from here; pandas and
pyarrow load only when one of them is first used. ``RunStore`` and ``default_db_path`` (where
the commands log) are importable from here too, for a notebook's first line.
"""

from typing import Any

_FRAMES = ("completions_frame", "iter_step_frames", "steps_frame")


def __getattr__(name: str) -> Any:
    # lazy: `import sampler.runlog` (every command) must not import pandas or pyarrow
    if name in _FRAMES:
        from sampler.runlog import frames

        return getattr(frames, name)
    if name == "RunStore":
        from sampler.runlog.store import RunStore

        return RunStore
    if name == "default_db_path":
        from sampler.runlog.location import default_db_path

        return default_db_path
    raise AttributeError(f"module 'sampler.runlog' has no attribute {name!r}")
