"""The one redaction function every repr and explain row goes through."""

from helper.protocol import Credential
from helper.providers import Provider
from helper.redact import MASK, redact
from helper.store import Record


def test_every_listed_key_is_masked_whatever_its_case() -> None:
    values = {
        "Authorization": "Bearer at-1",
        "code_verifier": "cv-2",
        "device_code": "dc-3",
        "oauth_refresh_token": "rt-4",
        "client_secret": "cs-5",
        "host": "git.example.com",
    }

    shown = redact(values)

    assert shown == {
        "Authorization": MASK,
        "code_verifier": MASK,
        "device_code": MASK,
        "oauth_refresh_token": MASK,
        "client_secret": MASK,
        "host": "git.example.com",
    }
    assert values["code_verifier"] == "cv-2"  # the input is left alone


def test_reprs_show_the_key_but_never_a_secret() -> None:
    cred = Credential(protocol="https", host="h.test", password="pw-1")
    provider = Provider(client_id="app", client_secret="cs-2")
    record = Record(host="h.test", password="pw-3", msal_cache="mc-4")

    shown = " ".join(map(repr, (cred, provider, record)))

    for secret in ("pw-1", "cs-2", "pw-3", "mc-4"):
        assert secret not in shown
    assert "'h.test'" in repr(cred) and "'app'" in repr(provider)
    assert shown.count(MASK) == 4
