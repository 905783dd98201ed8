"""The use cases: publishing, verifying, the log, feeds and snapshots, audit, key changes, witnesses.

Each takes what it works on as arguments (a session or a reader, the
keyring, the time) and knows neither Flask nor HTTP; ``registry.http`` calls
them from views, ``registry.cli`` from commands. What a statement must be is
``statements``; what is void, and who may claim an identifier, is the pure
``registry.domain``.
"""
