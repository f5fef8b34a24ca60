"""These notebooks are inputs of the browser test, not lessons: nbval must not collect them
(one is broken on purpose)."""
collect_ignore_glob = ["*.ipynb"]
