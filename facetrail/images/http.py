"""The ``http://`` and ``https://`` image sources: fetching under guards.

URL fetching guards against server-side request forgery (a URL that makes the server fetch
from itself, its network or its cloud metadata service):

* http and https only; no credentials in the URL.
* The host is resolved once per hop and *every* resolved address is checked: loopback, private,
  link-local, multicast, reserved, unspecified, carrier-grade NAT, site-local and other
  non-global addresses are refused (also when embedded in IPv4-mapped, 6to4, Teredo or NAT64
  IPv6 addresses), as are cloud metadata addresses (169.254.169.254, fd00:ec2::254, ...), which
  are refused even inside an allowed network.
* The connection goes to the address that was checked (the socket is opened to the IP, with the
  host name kept for the Host header and TLS), so DNS cannot answer differently in between.
* Redirects are followed by hand, at most ``fetch_max_redirects``, each hop checked again.
* The body is streamed and cut at ``max_image_bytes`` (ImageTooLargeError); connect, per-read and
  whole-response timeouts apply (the last enforced by a watchdog that shuts the socket).
* The content must start with an image format's magic bytes; the Content-Type header is ignored.

``FACETRAIL_FETCH_ALLOW_NETWORKS`` (comma-separated CIDRs) lets internal deployments and tests
fetch from networks that would otherwise be refused. Proxies from the environment are not used.

Errors are facetrail exceptions (``facetrail.errors``) with ``retryable`` set: refusals and 4xx
are final, timeouts, connection failures, 408/429 and 5xx may be retried.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from facetrail.errors import (
    ConfigurationError,
    FacetrailError,
    FetchError,
    FetchTimeoutError,
    HTTPStatusError,
    ImageTooLargeError,
    InvalidImageError,
    URLRefusedError,
)
from facetrail.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Sequence[str]]

USER_AGENT = "facetrail-tagging/0.1"
CHUNK = 64 * 1024
REDIRECTS = frozenset({301, 302, 303, 307, 308})

# Instance metadata services. Most sit in ranges refused anyway (link-local, ULA, CGNAT); they
# are listed so that no allow-list can open them, and for those in public-looking ranges.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle...
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.170.23",  # AWS EKS pod identity agent
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "fd00:ec2::23",  # AWS EKS pod identity agent over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud (legacy)
        "168.63.129.16",  # Azure host wire server (a public-range address)
    )
)
# Not global, though Python's ``is_global`` says otherwise for some of them.
_REFUSED_NETWORKS: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(net), why)
    for net, why in (
        ("100.64.0.0/10", "carrier-grade NAT"),
        ("192.0.0.0/24", "IETF protocol assignments"),
        ("fec0::/10", "site-local"),
        ("64:ff9b:1::/48", "local-use NAT64"),
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

# Magic bytes of the formats facetrail.images accepts (MPO files are JPEGs).
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)


@dataclass(frozen=True)
class FetchedImage:
    url: str
    final_url: str  # after redirects
    data: bytes
    format: str  # sniffed from the bytes
    content_type: str  # as the server said; informational only


def sniff_format(head: bytes) -> str | None:
    """The image format ``head`` (the first bytes) starts like, or None."""
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            return fmt
    return None


def parse_networks(spec: str) -> tuple[IPNetwork, ...]:
    """``"127.0.0.0/8, 10.1.2.3"`` -> networks; a bad entry is a configuration error."""
    networks: list[IPNetwork] = []
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigurationError(
                f"FACETRAIL_FETCH_ALLOW_NETWORKS: {item!r} is not an IP network"
            ) from None
    return tuple(networks)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    found: list[ipaddress.IPv4Address] = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    if ip in _NAT64:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def refusal_reason(ip: IPAddress, allowed: Sequence[IPNetwork] = ()) -> str | None:
    """Why ``ip`` may not be fetched from, or None when it may."""
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if isinstance(ip, ipaddress.IPv6Address):
        for inner in _embedded_ipv4(ip):
            reason = refusal_reason(inner, allowed)
            if reason is not None:
                return f"{reason} (as {inner}, embedded in an IPv6 address)"
    if any(ip.version == net.version and ip in net for net in allowed):
        return None
    checks = (
        (ip.is_unspecified, "unspecified"),
        (ip.is_loopback, "loopback"),
        (ip.is_link_local, "link-local"),
        (ip.is_multicast, "multicast"),
        (ip.is_reserved, "reserved"),
        (ip.is_private, "private"),
    )
    for hit, why in checks:
        if hit:
            return why
    for net, why in _REFUSED_NETWORKS:
        if ip.version == net.version and ip in net:
            return why
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return "site-local"
    if not ip.is_global:
        return "not a public address"
    return None


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for ``host`` (TCP), in its order."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        transient = exc.errno in (socket.EAI_AGAIN,)
        raise FetchError(f"{host}: cannot resolve ({exc.strerror})", retryable=transient) from None
    addresses: list[str] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = str(sockaddr[0]).split("%", 1)[0]  # drop an IPv6 zone id
        if address not in addresses:
            addresses.append(address)
    return addresses


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str
    port: int
    path: str


def _parse(url: str) -> _Target:
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise URLRefusedError(f"{url}: malformed URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise URLRefusedError(f"{url}: only http and https URLs are fetched, not {scheme!r}")
    if parts.username is not None or parts.password is not None:
        raise URLRefusedError(f"{url}: URLs with credentials are refused")
    host = parts.hostname
    if not host:
        raise URLRefusedError(f"{url}: no host")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return _Target(scheme, host, port or (443 if scheme == "https" else 80), path)


class _PinnedConnection(http.client.HTTPConnection):
    """An HTTP connection over a socket already opened to a checked address."""

    def __init__(self, host: str, port: int, sock: socket.socket, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.sock = sock

    def connect(self) -> None:  # never resolve or reconnect: the socket is the checked one
        if self.sock is None:
            raise http.client.NotConnected("the pinned socket was closed")


class Fetcher:
    """Fetches image URLs under the guards above. Thread-safe; one per settings is enough."""

    def __init__(self, settings: Settings, *, resolver: Resolver | None = None) -> None:
        self.settings = settings
        self.allowed = parse_networks(settings.fetch_allow_networks)
        self.max_bytes = settings.max_image_bytes
        self._resolve = resolver or system_resolver
        self._tls = ssl.create_default_context()

    def fetch(self, url: str, *, deadline: float | None = None) -> FetchedImage:
        """``url``'s image; gives up at ``fetch_total_timeout`` or ``deadline`` (monotonic),
        whichever comes first."""
        own = time.monotonic() + self.settings.fetch_total_timeout
        deadline = own if deadline is None else min(own, deadline)
        current = url
        for _hop in range(self.settings.fetch_max_redirects + 1):
            outcome = self._hop(current, deadline)
            if isinstance(outcome, FetchedImage):
                return FetchedImage(
                    url, current, outcome.data, outcome.format, outcome.content_type
                )
            current = urllib.parse.urljoin(current, outcome)
        raise FetchError(
            f"{url}: more than {self.settings.fetch_max_redirects} redirects", retryable=False
        )

    def fetch_many(
        self, urls: Iterable[str], *, workers: int = 4
    ) -> Iterator[tuple[str, FetchedImage | FacetrailError]]:
        """(url, image or error) for each URL, in order; fetches ``workers`` at a time."""

        def one(u: str) -> tuple[str, FetchedImage | FacetrailError]:
            try:
                return u, self.fetch(u)
            except FacetrailError as exc:
                return u, exc

        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            yield from pool.map(one, urls)

    # -- one request ---------------------------------------------------------------------------

    def _addresses(self, target: _Target, url: str) -> list[str]:
        addresses = list(self._resolve(target.host, target.port))
        if not addresses:
            raise FetchError(f"{url}: {target.host} has no address", retryable=False)
        for address in addresses:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                raise URLRefusedError(f"{url}: resolver returned {address!r}") from None
            reason = refusal_reason(ip, self.allowed)
            if reason is not None:
                # One bad address refuses the host: the connection could land on any of them.
                raise URLRefusedError(f"{url}: {target.host} resolves to {ip}, {reason}")
        return addresses

    def _connect(
        self, target: _Target, addresses: Sequence[str], url: str, deadline: float
    ) -> socket.socket:
        last: OSError | None = None
        for address in addresses:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                sock = socket.create_connection(
                    (address, target.port), timeout=min(self.settings.fetch_connect_timeout, left)
                )
            except OSError as exc:  # refused, unreachable or timed out: try the next address
                last = exc
                continue
            sock.settimeout(self.settings.fetch_read_timeout)
            if target.scheme == "https":
                try:
                    return self._tls.wrap_socket(sock, server_hostname=target.host)
                except ssl.SSLCertVerificationError as exc:
                    sock.close()
                    raise FetchError(
                        f"{url}: TLS certificate refused ({exc.verify_message})"
                    ) from None
                except (OSError, ssl.SSLError) as exc:
                    sock.close()
                    raise FetchError(
                        f"{url}: TLS handshake failed ({exc})", retryable=True
                    ) from None
            return sock
        if isinstance(last, TimeoutError) or time.monotonic() >= deadline:
            raise FetchTimeoutError(f"{url}: connection timed out")
        raise FetchError(f"{url}: cannot connect ({last})", retryable=True)

    def _hop(self, url: str, deadline: float) -> FetchedImage | str:
        """Fetch ``url``: the image, or the Location of a redirect."""
        target = _parse(url)
        addresses = self._addresses(target, url)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FetchTimeoutError(f"{url}: took longer than {self.settings.fetch_total_timeout}s")
        sock = self._connect(target, addresses, url, deadline)
        fired = threading.Event()

        def abort() -> None:
            fired.set()
            with contextlib.suppress(OSError):  # already closed: nothing left to interrupt
                sock.shutdown(socket.SHUT_RDWR)

        watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), abort)
        watchdog.daemon = True
        watchdog.start()
        conn = _PinnedConnection(target.host, target.port, sock, self.settings.fetch_read_timeout)
        try:
            return self._exchange(conn, target, url, fired)
        except TimeoutError:
            raise FetchTimeoutError(f"{url}: timed out waiting for the server") from None
        except (http.client.HTTPException, OSError) as exc:
            if fired.is_set():
                raise FetchTimeoutError(
                    f"{url}: took longer than {self.settings.fetch_total_timeout}s"
                ) from None
            raise FetchError(f"{url}: {type(exc).__name__}: {exc}", retryable=True) from None
        finally:
            watchdog.cancel()
            conn.close()

    def _exchange(
        self, conn: _PinnedConnection, target: _Target, url: str, fired: threading.Event
    ) -> FetchedImage | str:
        conn.request(
            "GET",
            target.path,
            headers={
                "User-Agent": USER_AGENT,
                "Accept": "image/*",
                "Accept-Encoding": "identity",
                "Connection": "close",
            },
        )
        response = conn.getresponse()
        status = response.status
        if status in REDIRECTS:
            location = response.getheader("Location")
            if not location:
                raise FetchError(f"{url}: redirect ({status}) without a Location", retryable=False)
            return location
        if status >= 400:
            raise HTTPStatusError(f"{url}: HTTP {status} {response.reason}", status=status)
        if not 200 <= status < 300:
            raise FetchError(f"{url}: unexpected HTTP status {status}", retryable=False)
        length = response.getheader("Content-Length")
        if length and length.isdigit() and int(length) > self.max_bytes:
            raise ImageTooLargeError(
                f"{url}: {length} bytes (Content-Length) exceeds the {self.max_bytes}-byte limit"
            )
        data = bytearray()
        fmt: str | None = None
        while True:
            chunk = response.read1(CHUNK)
            if not chunk:
                break
            data += chunk
            if len(data) > self.max_bytes:
                raise ImageTooLargeError(
                    f"{url}: more than {self.max_bytes} bytes; download stopped at the limit"
                )
            if fmt is None and len(data) >= 12:
                fmt = _sniff_or_refuse(bytes(data[:16]), url)
        if fired.is_set():  # the watchdog shut the socket: what we have may be truncated
            raise FetchTimeoutError(f"{url}: took longer than {self.settings.fetch_total_timeout}s")
        if not data:
            raise InvalidImageError(f"{url}: empty response body")
        if fmt is None:
            fmt = _sniff_or_refuse(bytes(data[:16]), url)
        return FetchedImage(url, url, bytes(data), fmt, response.getheader("Content-Type") or "")


def _sniff_or_refuse(head: bytes, url: str) -> str:
    fmt = sniff_format(head)
    if fmt is None:
        raise InvalidImageError(f"{url}: the response is not an image (starts with {head[:8]!r})")
    return fmt


class HttpReader:
    """The opener's reader for ``http://`` and ``https://`` sources."""

    def __init__(self, settings: Settings) -> None:
        self.fetcher = Fetcher(settings)

    def read(self, source: str, *, deadline: float | None = None) -> bytes:
        return self.fetcher.fetch(source, deadline=deadline).data
