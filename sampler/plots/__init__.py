"""Figures any command draws (matplotlib, imported only when a plot is drawn): the cheat sheet
(``softmax --plot``), ``analyze --plot``, ``divergence --plot``, and the shared plumbing
(headless pyplot, safe atomic saves, token labels) the run report's pictures use too."""
