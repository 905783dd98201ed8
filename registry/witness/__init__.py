"""A witness that partners run: C2SP tlog-witness add-checkpoint, answered with cosignature/v1.

It needs nothing of the registry but ``registry.crypto``: no settings, no
database but its own SQLite state file, no Flask. ``python -m
registry.witness`` makes its key, configures the logs it witnesses and
serves; see README.md, "Running a witness".
"""
