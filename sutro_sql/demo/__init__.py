"""What `sutro-sql demo` runs, shipped inside the package so a pip-installed user has it too.

`quickstart.py` is the demo; `functions/` is a link to the repository's `examples/functions`
(one copy of the example specs: the wheel gets real files, as package data).
"""
