"""Reports on logged runs: per-temperature summaries, plots, Markdown and HTML pages."""
