"""The validation worker's domain code (issue #16).

No imports here: the sandbox child imports this package before its limits are all set.
"""
