"""The run log: a SQLite store, its schema and migrations, path checks and export."""
