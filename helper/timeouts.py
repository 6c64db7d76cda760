"""How long anything may take: the bounds that keep git from hanging.

A module of its own, without imports: a process that only waits for another
one's refresh must not load requests to learn how long to wait.
"""

__all__ = ["HTTP", "REFRESH_WAIT", "SIGN_IN"]

# (connect, read) seconds: no request may wait forever on a silent server.
HTTP = (5.0, 30.0)
# Seconds a sign-in may take before it gives up (the user's browser or code).
SIGN_IN = 300
# A caller that may not sign in waits this long for another one's refresh:
# three refresh requests at their slowest (discovery, a retry), to spare.
REFRESH_WAIT = 3 * sum(HTTP)
