"""The http(s) source: URL fetching guards, against real HTTP servers on 127.0.0.x."""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from facetrail.errors import (
    FetchError,
    FetchTimeoutError,
    HTTPStatusError,
    ImageTooLargeError,
    InvalidImageError,
    URLRefusedError,
)
from facetrail.images import open_image
from facetrail.images.http import Fetcher, refusal_reason, sniff_format
from facetrail.settings import Settings

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
EAGLE = DATA / "dlib" / "dlib" / "test" / "ffmpeg_data" / "eagle.jpg"
CAP = 300_000  # bytes; eagle.jpg is below it


@dataclass
class Server:
    host: str
    port: int
    requests: list[tuple[str, str]] = field(default_factory=list)  # (path, Host header)
    sent: dict[str, int] = field(default_factory=dict)  # path -> body bytes written

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"


def _handler(server: Server) -> type[BaseHTTPRequestHandler]:
    photo = EAGLE.read_bytes()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(
            self, status: int, body: bytes, ctype: str = "image/jpeg", **headers: str
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for key, value in headers.items():
                self.send_header(key.replace("_", "-"), value)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            path, _, query = self.path.partition("?")
            server.requests.append((path, self.headers.get("Host", "")))
            if path == "/eagle.jpg":
                self._send(200, photo)
            elif path == "/redirect":
                self._send(302, b"", Location=query.removeprefix("to="))
            elif path == "/loop":
                self._send(302, b"", Location="/loop")
            elif path == "/html":
                self._send(200, b"<html><body>not an image</body></html>", "image/jpeg")
            elif path == "/missing":
                self._send(404, b"no", "text/plain")
            elif path == "/unavailable":
                self._send(503, b"busy", "text/plain")
            elif path == "/declared-huge":
                self.send_response(200)
                self.send_header("Content-Length", str(10 * CAP))
                self.end_headers()
                self._stream(path, 10 * CAP)
            elif path == "/endless":
                self.send_response(200)  # no length: the body ends when the server closes
                self.end_headers()
                self._stream(path, 100 * CAP)
            elif path == "/slow":
                time.sleep(2.0)
                self._send(200, photo)
            elif path == "/trickle":
                self.send_response(200)
                self.end_headers()
                self.wfile.write(photo[:16])
                for i in range(16, 200):
                    time.sleep(0.1)  # each read waits less than the read timeout
                    try:
                        self.wfile.write(photo[i : i + 1])
                        self.wfile.flush()
                    except OSError:
                        return
            else:
                self._send(404, b"", "text/plain")

        def _stream(self, path: str, total: int) -> None:
            chunk = photo[:4096] + b"\0" * (65536 - 4096)
            written = 0
            try:
                while written < total:
                    self.wfile.write(chunk)
                    written += len(chunk)
                    server.sent[path] = written
            except OSError:
                return  # the client hung up, as it should past the cap

    return Handler


@pytest.fixture
def servers() -> Iterator[tuple[Server, Server]]:
    """Two servers: 127.0.0.2 (allowed in the tests' settings) and 127.0.0.3 (not)."""
    running = []
    made = []
    for host in ("127.0.0.2", "127.0.0.3"):
        info = Server(host, 0)
        httpd = ThreadingHTTPServer((host, 0), _handler(info))
        httpd.daemon_threads = True
        info.port = httpd.server_address[1]
        thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        running.append(httpd)
        made.append(info)
    try:
        yield made[0], made[1]
    finally:
        for httpd in running:
            httpd.shutdown()
            httpd.server_close()


def settings(allow: str = "127.0.0.2/32", **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "fetch_allow_networks": allow,
        "fetch_connect_timeout": 2.0,
        "fetch_read_timeout": 0.5,
        "fetch_total_timeout": 5.0,
        "max_image_bytes": CAP,
    }
    values.update(overrides)
    return Settings(**values)


# -- allowed fetches ---------------------------------------------------------------------------


def test_an_allowed_servers_image_is_fetched_and_decoded(servers: tuple[Server, Server]) -> None:
    allowed, _ = servers
    fetched = Fetcher(settings()).fetch(allowed.url("/eagle.jpg"))
    assert fetched.data == EAGLE.read_bytes()
    assert fetched.format == "JPEG"
    image = open_image(settings(), allowed.url("/eagle.jpg"))
    assert (image.width, image.height) == (773, 512)
    assert image.source == allowed.url("/eagle.jpg")


def test_the_checked_address_is_the_one_connected_to(servers: tuple[Server, Server]) -> None:
    """The host is resolved once per hop and the socket opened to that address: a resolver that
    answers differently the second time (DNS rebinding) is never asked again."""
    allowed, _ = servers
    answers = ["127.0.0.2", "10.0.0.1", "169.254.169.254"]
    asked: list[str] = []

    def rebinding(host: str, port: int) -> list[str]:
        asked.append(host)
        return [answers[len(asked) - 1]]

    fetched = Fetcher(settings(), resolver=rebinding).fetch(
        f"http://photos.example:{allowed.port}/eagle.jpg"
    )
    assert fetched.data == EAGLE.read_bytes()
    assert asked == ["photos.example"]
    # The server saw the name, not the address, in the Host header.
    assert allowed.requests == [("/eagle.jpg", f"photos.example:{allowed.port}")]


def test_relative_redirects_are_followed_and_rechecked(servers: tuple[Server, Server]) -> None:
    allowed, _ = servers
    fetched = Fetcher(settings()).fetch(allowed.url("/redirect?to=/eagle.jpg"))
    assert fetched.final_url == allowed.url("/eagle.jpg")
    assert [p for p, _ in allowed.requests] == ["/redirect", "/eagle.jpg"]


# -- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.5.4", "private"),
        ("192.168.0.10", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.10.20", "link-local"),
        ("fe80::1", "link-local"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("100.100.100.200", "metadata"),
        ("168.63.129.16", "metadata"),
        ("100.64.1.1", "carrier-grade NAT"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("fec0::1", "site-local"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("::ffff:169.254.169.254", "metadata"),
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("64:ff9b::a9fe:a9fe", "metadata"),  # NAT64 of 169.254.169.254
        ("192.0.0.8", "IETF"),
    ],
)
def test_internal_addresses_are_refused(address: str, reason: str) -> None:
    why = refusal_reason(ipaddress.ip_address(address))
    assert why is not None and reason in why


def test_public_addresses_pass_and_the_allow_list_opens_internal_ones() -> None:
    assert refusal_reason(ipaddress.ip_address("93.184.216.34")) is None
    assert refusal_reason(ipaddress.ip_address("2606:4700::1111")) is None
    allow = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("169.254.0.0/16"))
    assert refusal_reason(ipaddress.ip_address("10.9.8.7"), allow) is None
    assert refusal_reason(ipaddress.ip_address("169.254.1.1"), allow) is None
    # Metadata stays refused inside an allowed network.
    assert "metadata" in (refusal_reason(ipaddress.ip_address("169.254.169.254"), allow) or "")


@pytest.mark.parametrize(
    "host", ["127.0.0.2", "127.0.0.1", "localhost", "169.254.169.254", "[::1]", "0.0.0.0"]
)
def test_internal_urls_are_refused_without_the_allow_list(
    servers: tuple[Server, Server], host: str
) -> None:
    allowed, _ = servers
    with pytest.raises(URLRefusedError) as info:
        Fetcher(settings(allow="")).fetch(f"http://{host}:{allowed.port}/eagle.jpg")
    assert info.value.retryable is False
    assert allowed.requests == []  # refused before connecting


def test_every_resolved_address_is_checked() -> None:
    def mixed(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "10.0.0.7"]  # one public, one private

    with pytest.raises(URLRefusedError, match=r"10\.0\.0\.7"):
        Fetcher(settings(allow=""), resolver=mixed).fetch("http://mixed.example/a.jpg")


def test_a_redirect_to_a_refused_host_is_refused(servers: tuple[Server, Server]) -> None:
    allowed, other = servers
    for target in (other.url("/eagle.jpg"), "http://169.254.169.254/latest/meta-data/"):
        with pytest.raises(URLRefusedError):
            Fetcher(settings()).fetch(allowed.url(f"/redirect?to={target}"))
    assert other.requests == []
    with pytest.raises(URLRefusedError, match="only http and https"):
        Fetcher(settings()).fetch(allowed.url("/redirect?to=file:///etc/passwd"))


def test_redirect_loops_end(servers: tuple[Server, Server]) -> None:
    allowed, _ = servers
    with pytest.raises(FetchError, match="redirects") as info:
        Fetcher(settings(fetch_max_redirects=3)).fetch(allowed.url("/loop"))
    assert info.value.retryable is False
    assert len(allowed.requests) == 4


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.2/eagle.jpg",
        "file:///etc/passwd",
        "gopher://127.0.0.2:70/_GET",
        "data:image/png;base64,iVBORw0KGgo=",
        "http://user:secret@127.0.0.2/eagle.jpg",
        "http:///no-host",
        "http://127.0.0.2:99999/",
    ],
)
def test_other_schemes_and_malformed_urls_are_refused(url: str) -> None:
    with pytest.raises(URLRefusedError):
        Fetcher(settings()).fetch(url)


def test_the_opener_refuses_other_schemes_instead_of_reading_them_as_files() -> None:
    for source in ("ftp://example.com/a.jpg", "gopher://127.0.0.2:70/_GET", "data://x"):
        with pytest.raises(URLRefusedError):
            open_image(settings(), source)
    image = open_image(settings(), str(EAGLE))  # a plain path is still a path
    assert image.width == 773


# -- limits and content ------------------------------------------------------------------------


def test_oversize_bodies_are_cut_at_the_cap(servers: tuple[Server, Server]) -> None:
    allowed, _ = servers
    with pytest.raises(ImageTooLargeError):
        Fetcher(settings()).fetch(allowed.url("/endless"))
    with pytest.raises(ImageTooLargeError, match="Content-Length"):
        Fetcher(settings()).fetch(allowed.url("/declared-huge"))
    time.sleep(0.3)  # let the server notice the hang-up
    # The client stopped reading near the cap, far from the 100x the server was ready to send.
    assert allowed.sent["/endless"] < 100 * CAP


def test_slow_servers_time_out(servers: tuple[Server, Server]) -> None:
    allowed, _ = servers
    with pytest.raises(FetchTimeoutError) as info:
        Fetcher(settings()).fetch(allowed.url("/slow"))
    assert info.value.retryable is True
    # Each byte arrives within the read timeout, but the whole response takes too long.
    with pytest.raises(FetchTimeoutError, match="longer than"):
        Fetcher(settings(fetch_total_timeout=1.0)).fetch(allowed.url("/trickle"))


def test_content_is_sniffed_not_trusted(servers: tuple[Server, Server]) -> None:
    allowed, _ = servers
    with pytest.raises(InvalidImageError, match="not an image") as info:
        Fetcher(settings()).fetch(allowed.url("/html"))  # served as image/jpeg
    assert info.value.retryable is False
    assert sniff_format(EAGLE.read_bytes()[:16]) == "JPEG"
    assert sniff_format(b"RIFF\0\0\0\0WEBPVP8 ") == "WEBP"
    assert sniff_format(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR") == "PNG"
    assert sniff_format(b"<svg xmlns=...") is None


def test_http_errors_say_whether_a_retry_may_help(servers: tuple[Server, Server]) -> None:
    allowed, _ = servers
    with pytest.raises(HTTPStatusError) as missing:
        Fetcher(settings()).fetch(allowed.url("/missing"))
    assert missing.value.status == 404 and missing.value.retryable is False
    with pytest.raises(HTTPStatusError) as busy:
        Fetcher(settings()).fetch(allowed.url("/unavailable"))
    assert busy.value.status == 503 and busy.value.retryable is True


def test_fetch_many_keeps_order_and_reports_errors(servers: tuple[Server, Server]) -> None:
    allowed, other = servers
    urls = [allowed.url("/eagle.jpg"), other.url("/eagle.jpg"), allowed.url("/html")]
    results = list(Fetcher(settings()).fetch_many(urls, workers=2))
    assert [u for u, _ in results] == urls
    assert not isinstance(results[0][1], Exception) and results[0][1].format == "JPEG"
    assert isinstance(results[1][1], URLRefusedError)
    assert isinstance(results[2][1], InvalidImageError)
