"""Provider settings: what the helper needs to know about one host's OAuth server.

Built-in presets are data (:data:`PRESETS`); :mod:`helper.settings` layers git
config, the user's file and request attributes on top of them. Plain classes
rather than dataclasses: this module loads on every git command, and
``dataclasses`` alone costs more start-up time than the whole cache-hit path.
"""

__all__ = ["FIELDS", "FLOWS", "PRESETS", "Provider"]

FLOWS = ("auto", "browser", "device")

# Setting name -> default. Every setting is a string except ``scopes`` (a
# tuple), ``expiry_margin`` (seconds) and ``auth_params`` (a dict).
FIELDS: dict[str, object] = {
    "name": "",
    "client_id": "",
    "client_secret": "",
    "scopes": (),
    "issuer": "",
    "auth_url": "",
    "token_url": "",
    "device_auth_url": "",
    "redirect_url": "",
    "flow": "auto",
    "username": "oauth2",
    # Seconds before expiry at which a token counts as expired: git compares
    # whole seconds, and a server may reject a token in its last moments.
    "expiry_margin": 60,
    "auth_params": {},
}
_SECRET_FIELDS = frozenset({"client_secret"})


class Provider:
    """Resolved settings for one URL; ``sources`` says where each value came from."""

    name: str
    client_id: str
    client_secret: str
    scopes: tuple[str, ...]
    issuer: str
    auth_url: str
    token_url: str
    device_auth_url: str
    redirect_url: str
    flow: str
    username: str
    expiry_margin: int
    auth_params: dict[str, str]

    def __init__(self, **values: object) -> None:
        self.sources: dict[str, str] = {}
        for key, default in FIELDS.items():
            value = values.pop(key, default)
            setattr(self, key, dict(value) if isinstance(value, dict) else value)
        if values:
            raise TypeError(f"unknown provider settings: {sorted(values)}")

    def set(self, key: str, value: object, source: str) -> None:
        """Set one setting and remember where it came from."""
        setattr(self, key, value)
        self.sources[key] = source

    @property
    def scope(self) -> str:
        """Scopes as the space-separated string RFC 6749 §3.3 sends."""
        return " ".join(self.scopes)

    def __repr__(self) -> str:
        shown = {
            key: "[secure]"
            if key in _SECRET_FIELDS and getattr(self, key)
            else getattr(self, key)
            for key in FIELDS
        }
        return f"Provider({shown!r})"


# Host (exact, or "*.suffix") -> preset. Each entry states only what the host
# documents; a host with no public client ID for third-party tools carries
# none, and the user registers an application of their own.
PRESETS: dict[str, dict[str, object]] = {
    "gitlab.com": {
        "name": "GitLab",
        "auth_url": "https://gitlab.com/oauth/authorize",
        "token_url": "https://gitlab.com/oauth/token",
        "device_auth_url": "https://gitlab.com/oauth/authorize_device",
        "scopes": ("read_repository", "write_repository"),
        "username": "oauth2",
    },
}
