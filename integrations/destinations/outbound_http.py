"""Sending to URLs that staff typed in: which URLs are safe, and one POST to a checked address.

A destination URL is chosen in the UI, so a careless or hostile one could point Trialloop at the machine it
runs on or at the private network around it (a database, a cloud metadata service). Only http(s) is allowed,
and every address the host resolves to must be public unless `DESTINATIONS_ALLOW_PRIVATE_URLS` is set. The
check runs when a destination is saved and again before every send, and the connection then goes to the
very address that was checked, so a DNS answer that changes in between cannot redirect the request.
Redirects are never followed. Standard library only: one POST with a timeout needs nothing more.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from django.conf import settings

ALLOWED_SCHEMES = ("http", "https")
DEFAULT_TIMEOUT_SECONDS = 5.0
ERROR_BODY_CHARS = 500
_TLS = ssl.create_default_context()


class UnsafeUrl(ValueError):
    """A URL Trialloop will not send to (wrong scheme, credentials in it, or a non-public address)."""


class UnresolvableHost(UnsafeUrl):
    """The host has no address right now: refused when saving, retried later when sending."""


@dataclass(frozen=True)
class HttpResult:
    """How one POST went: the status code when there was an answer, and a readable error when it was not 2xx."""

    status: int | None
    error: str = ""
    refused: bool = False

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def permanent(self) -> bool:
        """Worth no retry: the URL was refused, or a 4xx other than 408 (timeout) and 429 (slow down)."""
        client_error = self.status is not None and 400 <= self.status < 500 and self.status not in (408, 429)
        return self.refused or client_error


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def _parts(url: str) -> SplitResult:
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        raise UnsafeUrl(f"Only http:// and https:// URLs are allowed, not {parts.scheme or 'no scheme'}.")
    if not parts.hostname:
        raise UnsafeUrl("The URL has no host.")
    if parts.username or parts.password:
        raise UnsafeUrl("Put no user name or password in the URL.")
    try:
        parts.port  # noqa: B018 - parsing the port validates it
    except ValueError as error:
        raise UnsafeUrl(f"The port is not valid: {error}.") from error
    return parts


def url_check(url: str, *, allow_private: bool | None = None) -> list[str]:
    """The addresses `url` resolves to, all safe to connect to; raises UnsafeUrl (or UnresolvableHost).

    `allow_private` defaults to the DESTINATIONS_ALLOW_PRIVATE_URLS setting, read on every call.
    """
    parts = _parts(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise UnresolvableHost(f"Cannot resolve the host {host!r}: {error}.") from error
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise UnresolvableHost(f"The host {host!r} has no address.")
    if allow_private is None:
        allow_private = bool(settings.DESTINATIONS_ALLOW_PRIVATE_URLS)
    if not allow_private:
        refused = [address for address in addresses if not _is_public(address)]
        if refused:
            raise UnsafeUrl(
                f"The host {host!r} resolves to a loopback, private, link-local or reserved address "
                f"({', '.join(refused)}); such targets are refused unless an admin sets "
                "DESTINATIONS_ALLOW_PRIVATE_URLS."
            )
    return addresses


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to an address checked beforehand instead of resolving the host name again."""

    def __init__(self, host: str, port: int, *, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.pinned_address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.pinned_address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """TLS to a checked address, verifying the certificate against the URL's host name."""

    def __init__(self, host: str, port: int, *, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=_TLS)
        self.pinned_address = address

    def connect(self) -> None:
        raw = socket.create_connection((self.pinned_address, self.port), self.timeout)
        self.sock = _TLS.wrap_socket(raw, server_hostname=self.host)


def http_post(
    url: str, body: bytes, headers: dict[str, str], *, timeout: float = DEFAULT_TIMEOUT_SECONDS
) -> HttpResult:
    """POST `body` to `url` after checking it again; never raises: refusals and network trouble come back as
    the result's error (a host that does not resolve now is worth a retry, a refused URL is not)."""
    try:
        parts = _parts(url)
        addresses = url_check(url)
    except UnresolvableHost as missing:
        return HttpResult(status=None, error=str(missing))
    except UnsafeUrl as unsafe:
        return HttpResult(status=None, error=f"Refused: {unsafe}", refused=True)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    https = parts.scheme.lower() == "https"
    port = parts.port or (443 if https else 80)  # explicit, so an IPv6 host is never parsed for a port
    last_error = ""
    for address in addresses:
        pinned = _PinnedHTTPSConnection if https else _PinnedHTTPConnection
        connection = pinned(parts.hostname or "", port, address=address, timeout=timeout)
        try:
            try:
                connection.connect()
            except OSError as error:
                last_error = f"Cannot connect to {address}: {error}."
                continue
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read(ERROR_BODY_CHARS).decode("utf-8", errors="replace")
        except (OSError, http.client.HTTPException) as error:
            return HttpResult(status=None, error=f"{type(error).__name__}: {error}")
        finally:
            connection.close()
        if 200 <= response.status < 300:
            return HttpResult(status=response.status)
        hint = " (redirects are not followed)" if 300 <= response.status < 400 else ""
        return HttpResult(status=response.status, error=f"HTTP {response.status}{hint}: {answer.strip()}".strip())
    return HttpResult(status=None, error=last_error)
