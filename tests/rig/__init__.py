"""Integration-test rig: OpenID provider, git server and browser for tests."""
