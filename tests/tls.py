"""Certificates for the TLS test servers, made with trustme, and the logins they know."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import trustme

DATA_LOGIN = ("zdsync", "data-Pa55word")
"""The ACL user of the TLS data nodes (their ``default`` user is off)."""
SENTINEL_PASSWORD = "sentinel-Pa55word"
"""The TLS Sentinels' own password, unlike the data nodes'."""


def acl_conf() -> list[str]:
    """The data nodes' users: ``default`` off, the one of ``DATA_LOGIN`` may do anything."""
    user, password = DATA_LOGIN
    return ["user default off", f"user {user} on >{password} ~* &* +@all"]


class Certificates:
    """PEM files in ``folder``: a CA; a server certificate for 127.0.0.1 and localhost
    (the servers also show it as their client certificate to each other); a client
    certificate; one that expired yesterday; one for another host; a CA nobody uses."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        ca = trustme.CA()
        self.ca = self._write("ca.pem", ca.cert_pem)
        self.other_ca = self._write("other-ca.pem", trustme.CA().cert_pem)
        self.server, self.server_key = self._issue(ca, "server", "127.0.0.1", "localhost")
        self.client, self.client_key = self._issue(ca, "client", "zdsync-client")
        now = dt.datetime.now(dt.UTC)
        self.expired, self.expired_key = self._issue(
            ca, "expired", "127.0.0.1", "localhost",
            not_before=now - dt.timedelta(days=2), not_after=now - dt.timedelta(days=1))
        self.misnamed, self.misnamed_key = self._issue(ca, "misnamed", "redis.example.com")

    def _write(self, name: str, blob: trustme.Blob) -> str:
        path = self.folder / name
        blob.write_to_path(str(path))
        return str(path)

    def _issue(self, ca: trustme.CA, name: str, *identities: str,
               **validity: dt.datetime) -> tuple[str, str]:
        cert = ca.issue_cert(*identities, **validity)
        return (self._write(f"{name}.pem", cert.cert_chain_pems[0]),
                self._write(f"{name}-key.pem", cert.private_key_pem))
