"""OAuth flows, one module each: authorization code with PKCE in the browser
(:mod:`.pkce`), device authorization (:mod:`.device`) and refresh
(:mod:`.refresh`). Each takes a provider with resolved endpoints and returns a
:class:`helper.tokens.Token` or raises :class:`helper.errors.FlowError`.
"""

__all__: list[str] = []
