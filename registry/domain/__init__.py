"""Pure customs rules: identifiers, the licence lifecycle, recognition.

No Flask, no SQLAlchemy: the offline verifier runs these same rules.
"""
