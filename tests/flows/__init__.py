"""Tests of the OAuth flows; ``fakeserver`` is shared with tests/test_*.py."""
