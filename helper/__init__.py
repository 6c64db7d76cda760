"""oauth-helper: a git credential helper for OAuth tokens.

Kept empty on purpose: every git command imports this package, so nothing heavy
may load here.
"""

__all__: list[str] = []
