"""Pure cryptography: canonical JSON, JWS/JWK, Merkle math, signed notes, key files.

Imports nothing else from the project, so a partner's offline verifier can use
it on its own.
"""
