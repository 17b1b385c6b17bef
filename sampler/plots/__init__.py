"""Plots (matplotlib, imported only when a plot is drawn)."""
