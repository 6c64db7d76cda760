"""Provider settings: what the helper needs to know about one host's OAuth server.

Built-in presets are data (:data:`PRESETS`, :data:`HOSTS`, :data:`NAME_HINTS`,
:data:`REALMS`); :mod:`helper.settings` picks one and layers git config, the
user's file and request attributes on top. Plain classes rather than
dataclasses: this module loads on every git command, and ``dataclasses`` alone
costs more start-up time than the whole cache-hit path.
"""

from helper.redact import redact

__all__ = ["FIELDS", "FLOWS", "HOSTS", "NAME_HINTS", "PRESETS", "REALMS", "Provider"]

FLOWS = ("auto", "browser", "device")

# Setting name -> default. Every setting is a string except ``scopes`` and
# ``redirect_ports`` (tuples), ``expiry_margin`` (seconds), ``auth_params`` (a
# dict) and ``secret_required`` (a flag).
FIELDS: dict[str, object] = {
    "name": "",
    "preset": "",
    "client_id": "",
    "client_secret": "",
    "scopes": (),
    "issuer": "",
    # The exact metadata URL, where a provider documents one (else the
    # issuer's well-known URLs are tried in turn).
    "discovery_url": "",
    # A Microsoft Entra authority: its presence selects the MSAL flow.
    "authority": "",
    "auth_url": "",
    "token_url": "",
    "device_auth_url": "",
    "redirect_url": "",
    # Ports to try, in order, when the redirect URL's own port is taken.
    "redirect_ports": (),
    "flow": "auto",
    "username": "oauth2",
    # The authorization parameter that carries the request's username as a
    # hint ("" when the provider takes none).
    "login_hint": "login_hint",
    # Seconds before expiry at which a token counts as expired: git compares
    # whole seconds, and a server may reject a token in its last moments.
    "expiry_margin": 60,
    "auth_params": {},
    # Where a user registers an OAuth application, for hosts that publish no
    # client ID for third-party tools, and what to choose there ("{redirect}"
    # stands for the redirect URI).
    "register_url": "",
    "register_hint": "redirect URI {redirect}",
    # The token endpoint refuses a browser-flow code without a client secret,
    # even for an app that cannot keep one.
    "secret_required": False,
    # What oauthIssuer should look like, for a preset that cannot know it.
    "issuer_hint": "",
    # The host's 401 names its Entra tenant (Bearer authorization_uri=...),
    # which then replaces the preset's multi-tenant authority.
    "tenant_from_challenge": False,
}


class Provider:
    """Resolved settings for one URL; ``sources`` says where each value came from."""

    name: str
    preset: str
    client_id: str
    client_secret: str
    scopes: tuple[str, ...]
    issuer: str
    discovery_url: str
    authority: str
    auth_url: str
    token_url: str
    device_auth_url: str
    redirect_url: str
    redirect_ports: tuple[int, ...]
    flow: str
    username: str
    login_hint: str
    expiry_margin: int
    auth_params: dict[str, str]
    register_url: str
    register_hint: str
    secret_required: bool
    issuer_hint: str
    tenant_from_challenge: bool

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
        shown = redact({key: getattr(self, key) for key in FIELDS})
        return f"Provider({shown!r})"


# What Databricks workspaces and account consoles share: databricks-cli is
# the public client Databricks enables in every account for its CLI and SDKs,
# and documents for tools doing U2M OAuth from a user's machine
# (docs.databricks.com/aws/en/dev-tools/auth/oauth-u2m), so using it is
# intended.
_DATABRICKS_CLIENT: dict[str, object] = {
    "client_id": "databricks-cli",
    "scopes": ("all-apis", "offline_access"),
    # Registered exactly so, no trailing slash; the Databricks SDKs try
    # 8021-8040 when 8020 is busy (databricks-sdk-go#1269).
    "redirect_url": "http://localhost:8020",
    "redirect_ports": tuple(range(8021, 8041)),
    "flow": "browser",
    # Azure Databricks rejects tokens with 30 s left: refresh well before.
    "expiry_margin": 300,
}

# Preset name -> settings. "{host}" stands for the host the preset serves
# (with its port). Each entry states only what the host documents; scopes are
# sorted, as settings stores them. A host with no public client ID for
# third-party tools carries none: the user registers an application at
# register_url and sets oauthClientId.
PRESETS: dict[str, dict[str, object]] = {
    "github": {
        "name": "GitHub",
        "auth_url": "https://{host}/login/oauth/authorize",
        "token_url": "https://{host}/login/oauth/access_token",
        "device_auth_url": "https://{host}/login/device/code",
        "scopes": ("gist", "repo", "workflow"),
        # GitHub authenticates git by the token alone and ignores the name;
        # x-access-token is the one its docs pair with tokens over HTTPS.
        "username": "x-access-token",
        # GitHub's authorize endpoint names its account hint "login".
        "login_hint": "login",
        "register_url": "https://{host}/settings/applications/new",
        # Without a secret the helper signs in with the device flow, which
        # GitHub turns on per app.
        "register_hint": "callback URL {redirect}, Enable Device Flow ticked",
        # OAuth apps need the client secret even with PKCE; the device flow
        # needs none (docs.github.com, "Authorizing OAuth apps").
        "secret_required": True,
    },
    "gitlab": {
        "name": "GitLab",
        "auth_url": "https://{host}/oauth/authorize",
        "token_url": "https://{host}/oauth/token",
        "device_auth_url": "https://{host}/oauth/authorize_device",
        "scopes": ("read_repository", "write_repository"),
        # docs.gitlab.com/api/oauth2: git over HTTPS with an OAuth token
        # takes the username "oauth2". Tokens last 2 hours; refresh tokens
        # rotate on every use.
        "username": "oauth2",
        "login_hint": "",
        "register_url": "https://{host}/-/user_settings/applications",
        # A confidential app (GitLab's default) wants a secret; the scopes the
        # helper asks for must be ticked on the app.
        "register_hint": "redirect URI {redirect}, Confidential unticked, "
        "scopes read_repository and write_repository",
    },
    "gitea": {
        "name": "Gitea/Forgejo",
        "auth_url": "https://{host}/login/oauth/authorize",
        "token_url": "https://{host}/login/oauth/access_token",
        "login_hint": "",
        "register_url": "https://{host}/user/settings/applications",
        # Gitea matches any loopback port only for non-confidential clients
        # (its default is confidential).
        "register_hint": "redirect URI {redirect}, Confidential client unticked",
    },
    "bitbucket": {
        "name": "Bitbucket",
        "auth_url": "https://bitbucket.org/site/oauth2/authorize",
        "token_url": "https://bitbucket.org/site/oauth2/access_token",
        "scopes": ("repository", "repository:write"),
        # Bitbucket Cloud's documented git username for OAuth access tokens.
        "username": "x-token-auth",
        "login_hint": "",
        # OAuth consumers belong to a workspace.
        "register_url": "https://bitbucket.org/<workspace>/workspace/settings/api",
        "register_hint": "callback URL {redirect}, permission Repositories: Write",
        # Bitbucket OAuth consumers are confidential clients.
        "secret_required": True,
    },
    "googlesource": {
        "name": "Gerrit on googlesource.com",
        "auth_url": "https://accounts.google.com/o/oauth2/v2/auth",
        "token_url": "https://oauth2.googleapis.com/token",
        "scopes": ("https://www.googleapis.com/auth/gerritcodereview",),
        "register_url": "https://console.cloud.google.com/apis/credentials",
        # Desktop clients take any loopback port and have no redirect field.
        "register_hint": "an OAuth client ID of type Desktop app",
        # Google issues "Desktop app" clients a secret and requires it at the
        # token endpoint (developers.google.com/identity/protocols/oauth2/native-app).
        "secret_required": True,
        # Google's refresh tokens come only with offline access.
        "auth_params": {"access_type": "offline"},
    },
    "databricks": {
        "name": "Databricks",
        "issuer": "https://{host}/oidc",
        # docs.databricks.com/aws/en/dev-tools/auth/oauth-u2m: the workspace
        # publishes RFC 8414 metadata at this exact URL.
        "discovery_url": "https://{host}/oidc/.well-known/oauth-authorization-server",
        **_DATABRICKS_CLIENT,
    },
    "databricks-account": {
        "name": "Databricks account console",
        # Account-level OAuth lives under /oidc/accounts/<account ID>, which
        # the host name does not tell: the user sets oauthIssuer to it. The
        # same client as workspaces ("databricks auth login --account-id").
        "issuer_hint": "https://{host}/oidc/accounts/<account ID>",
        **_DATABRICKS_CLIENT,
    },
    "azure-devops": {
        "name": "Azure DevOps",
        # Work and school accounts of any tenant (Microsoft identity platform
        # docs, "Authority"); a single-tenant app sets oauthAuthority.
        "authority": "https://login.microsoftonline.com/organizations",
        # An organization's own tenant, from its 401: a guest's home-tenant
        # token would be refused there.
        "tenant_from_challenge": True,
        # 499b84ac-... is Azure DevOps' resource ID (learn.microsoft.com,
        # "Use Microsoft Entra ID for Azure DevOps authentication").
        "scopes": ("499b84ac-1321-427f-aa17-267ca6975798/.default",),
        # Entra's portal registers plain http://localhost for desktop apps and
        # then accepts any port on it; 127.0.0.1 needs a manifest edit.
        "redirect_url": "http://localhost",
        "register_url": "https://entra.microsoft.com/#view/Microsoft_AAD_RegisteredApps",
        # The device flow needs public client flows allowed; ".default" grants
        # only the permissions the app lists.
        "register_hint": "platform Mobile and desktop applications, redirect URI "
        "{redirect}, Allow public client flows: Yes, API permission Azure "
        "DevOps user_impersonation",
    },
}

# Host (exact, or "*.suffix") -> (preset, the host its endpoints live on, ""
# for the request's own host). An exact name is looked up before patterns.
HOSTS: dict[str, tuple[str, str]] = {
    "github.com": ("github", ""),
    "gist.github.com": ("github", "github.com"),
    "gitlab.com": ("gitlab", ""),
    "gitea.com": ("gitea", ""),
    "codeberg.org": ("gitea", ""),
    "bitbucket.org": ("bitbucket", ""),
    "*.googlesource.com": ("googlesource", ""),
    "*.cloud.databricks.com": ("databricks", ""),
    "*.azuredatabricks.net": ("databricks", ""),
    "*.gcp.databricks.com": ("databricks", ""),
    # Exact names win over the patterns above.
    "accounts.cloud.databricks.com": ("databricks-account", ""),
    "accounts.azuredatabricks.net": ("databricks-account", ""),
    "accounts.gcp.databricks.com": ("databricks-account", ""),
    "dev.azure.com": ("azure-devops", ""),
    "*.visualstudio.com": ("azure-devops", ""),
}

# First label of a self-hosted forge's host name (gitlab.example.com) -> preset.
NAME_HINTS: dict[str, str] = {"gitlab": "gitlab", "gitea": "gitea", "forgejo": "gitea"}

# Lowercased realm of a Basic WWW-Authenticate challenge -> preset. GitLab
# sends realm="GitLab", Gitea realm="Gitea", GitHub Enterprise realm="GitHub".
REALMS: dict[str, str] = {
    "gitlab": "gitlab",
    "gitea": "gitea",
    "forgejo": "gitea",
    "github": "github",
}
