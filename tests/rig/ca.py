"""The rig's certificate authority (trustme) and its server certificates."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class RigCA:
    """The CA (ca.pem) and one server certificate for the rig's servers."""

    ca: trustme.CA
    ca_path: str
    cert_path: str
    key_path: str
    names: tuple[str, ...]

    def issue(self, directory: Path, *names: str) -> tuple[str, str]:
        """Another server certificate for names: (cert_path, key_path)."""
        return write_cert(self.ca, directory, names)


def create_ca(directory: Path, names: tuple[str, ...]) -> RigCA:
    """A new CA written to directory/ca.pem and a certificate for names."""
    ca = trustme.CA()
    ca_path = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    cert_path, key_path = write_cert(ca, directory, names)

    return RigCA(ca, str(ca_path), cert_path, key_path, names)


def write_cert(
    ca: trustme.CA, directory: Path, names: tuple[str, ...]
) -> tuple[str, str]:
    """Issue a leaf certificate for names; write its PEM cert and key."""
    cert = ca.issue_cert(*names)
    stem = "-".join(names)[:60].replace(":", "_")
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))

    return str(cert_path), str(key_path)
