"""Remote image URLs: allow-list, address vetting, pinning, redirects, limits.

Nothing here touches the network: DNS answers come from FAKE resolvers (dicts) and HTTP
answers from httpx.MockTransport handlers (FAKE servers)."""

from __future__ import annotations

import io
import time

import httpx
import pytest
from PIL import Image

from server.images.decoding import ImageError
from server.images.remote import RemotePolicy, host_allowed, parse_domains, refusal
from server.images.urls import ImageLimits, decode_image_url

LIMITS = ImageLimits(max_bytes=200_000, max_pixels=512 * 512)
PUBLIC_V4 = "93.184.216.34"
PUBLIC_V6 = "2606:2800:220:1:248:1893:25c8:1946"


def png(size: tuple[int, int] = (8, 6)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, "red").save(buffer, "PNG")
    return buffer.getvalue()


def fake_resolver(table: dict[str, list[str]]):
    """A FAKE DNS: host -> addresses; records every lookup."""
    lookups: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        lookups.append(host)
        if host not in table:
            raise OSError("FAKE DNS: no such host")
        return table[host]

    resolve.lookups = lookups  # type: ignore[attr-defined]
    return resolve


def fake_server(handler=None, seen: list[httpx.Request] | None = None) -> httpx.MockTransport:
    """A FAKE image server: by default 200 with a small PNG, streamed like a real body."""
    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        if handler is not None:
            return handler(request)
        return httpx.Response(200, headers={"content-type": "image/png"},
                              content=iter([png()[:50], png()[50:]]))
    return httpx.MockTransport(handle)


def limits(domains="example.com", dns=None, transport=None, timeout=5.0, max_bytes=200_000):
    dns = dns if dns is not None else {"example.com": [PUBLIC_V4], "img.example.com": [PUBLIC_V4]}
    policy = RemotePolicy(parse_domains(domains), timeout, resolver=fake_resolver(dns),
                          transport=transport or fake_server())
    return ImageLimits(max_bytes, LIMITS.max_pixels, policy)


def error(url: str, lim: ImageLimits) -> ImageError:
    with pytest.raises(ImageError) as info:
        decode_image_url(url, lim)
    return info.value


# ------------------------------------------------------------------- the happy path, pinned


def test_an_allowed_public_image_is_fetched_from_the_vetted_address_with_its_host_kept():
    seen: list[httpx.Request] = []
    lim = limits(transport=fake_server(seen=seen))
    image = decode_image_url("https://img.example.com:8443/a/cat.png?x=1", lim)
    assert image.size == (8, 6) and image.mode == "RGB"
    (request,) = seen
    assert request.url.host == PUBLIC_V4  # connects to the address that was checked
    assert request.url.port == 8443 and request.url.raw_path == b"/a/cat.png?x=1"
    assert request.headers["host"] == "img.example.com:8443"
    assert request.extensions["sni_hostname"] == "img.example.com"  # TLS checks the name
    assert request.headers["accept-encoding"] == "identity"


def test_the_host_is_resolved_once():
    lim = limits()
    decode_image_url("http://example.com/a.png", lim)
    assert lim.remote.resolver.lookups == ["example.com"]  # type: ignore[union-attr]


def test_ipv6_public_address_is_used_in_brackets():
    seen: list[httpx.Request] = []
    lim = limits(dns={"example.com": [PUBLIC_V6]}, transport=fake_server(seen=seen))
    decode_image_url("http://example.com/a.png", lim)
    assert seen[0].url.host == PUBLIC_V6 and seen[0].headers["host"] == "example.com"


def test_disabled_by_default():
    assert "not enabled" in str(error("http://example.com/a.png", LIMITS))


# ------------------------------------------------------------------- the allow-list


@pytest.mark.parametrize("host, allowed", [
    ("example.com", True), ("img.example.com", True), ("a.b.example.com", True),
    ("EXAMPLE.com", True), ("example.com.", True),
    ("badexample.com", False), ("example.com.evil.net", False), ("example.org", False),
    ("com", False), ("", False),
])
def test_allow_list_matches_the_host_or_its_subdomains(host, allowed):
    assert host_allowed(host, parse_domains("Example.COM, *.cdn.net")) is allowed


def test_allow_list_entries_are_normalised():
    assert parse_domains(" Example.COM ,.cdn.net,*.img.org,, 10.0.0.1 ,*") == (
        "example.com", "cdn.net", "img.org", "10.0.0.1", "*")
    assert host_allowed("x.cdn.net", parse_domains(".cdn.net"))


def test_ip_literals_must_be_listed_exactly():
    assert host_allowed("93.184.216.34", ("93.184.216.34",))
    assert not host_allowed("93.184.216.34", ("216.34",))
    assert not host_allowed("1.93.184.216.34", ("93.184.216.34",))
    assert host_allowed("93.184.216.34", ("*",))


def test_a_host_off_the_list_is_refused_before_any_lookup():
    lim = limits(domains="example.com")
    assert "allow-list" in str(error("http://example.org/a.png", lim))
    assert "allow-list" in str(error("http://notexample.com/a.png", lim))
    assert lim.remote.resolver.lookups == []  # type: ignore[union-attr]


def test_an_empty_allow_list_refuses_everything():
    assert "allow-list" in str(error("http://example.com/a.png", limits(domains="")))


def test_star_allows_any_host_but_still_vets_addresses():
    dns = {"anything.net": [PUBLIC_V4], "inside.net": ["10.1.2.3"]}
    lim = limits(domains="*", dns=dns)
    assert decode_image_url("http://anything.net/a.png", lim).size == (8, 6)
    assert "private" in str(error("http://inside.net/a.png", lim))


def test_credentials_and_other_schemes_are_refused():
    lim = limits()
    assert "password" in str(error("http://user:pw@example.com/a.png", lim))
    assert "data: URL" in str(error("ftp://example.com/a.png", lim))


# ------------------------------------------------------------------- address vetting


@pytest.mark.parametrize("address, reason", [
    ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"),
    ("10.0.0.5", "private"), ("172.16.3.4", "private"), ("192.168.1.1", "private"),
    ("fc00::1", "private"), ("fd12:3456::1", "private"),
    ("169.254.10.10", "link-local"), ("fe80::1", "link-local"), ("fe80::1%eth0", "link-local"),
    ("224.0.0.1", "multicast"), ("239.1.2.3", "multicast"), ("ff02::1", "multicast"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("240.0.0.1", "reserved"), ("255.255.255.255", "reserved"),
    ("169.254.169.254", "metadata"), ("fd00:ec2::254", "metadata"),
    ("100.64.0.1", "CGNAT"),
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:10.0.0.1", "private"),
    ("::ffff:169.254.169.254", "metadata"),
    ("2002:7f00:1::", "loopback"),  # 6to4 wrapping 127.0.0.1
    ("64:ff9b::a00:1", "private"),  # NAT64 wrapping 10.0.0.1
    ("192.0.2.1", "private"),  # documentation range
])
def test_refused_addresses(address, reason):
    found = refusal(address)
    assert found is not None and reason in found, (address, found)


@pytest.mark.parametrize("address", [PUBLIC_V4, "8.8.8.8", PUBLIC_V6, "::ffff:8.8.8.8"])
def test_public_addresses_pass(address):
    assert refusal(address) is None


@pytest.mark.parametrize("addresses", [
    ["127.0.0.1"], ["10.0.0.1"], ["169.254.169.254"], ["::ffff:127.0.0.1"], ["fd00:ec2::254"],
    [PUBLIC_V4, "192.168.0.1"],  # one bad address among good ones is enough
    ["::1", PUBLIC_V4],
])
def test_a_host_resolving_to_any_internal_address_is_refused_without_a_connection(addresses):
    seen: list[httpx.Request] = []
    lim = limits(dns={"example.com": addresses}, transport=fake_server(seen=seen))
    message = str(error("http://example.com/a.png", lim))
    assert "public addresses" in message
    assert seen == []


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/a.png", "http://[::1]/a.png", "http://169.254.169.254/latest/meta-data",
    "http://[::ffff:127.0.0.1]/a.png", "http://10.0.0.1/a.png",
])
def test_listed_ip_literals_are_vetted_too(url):
    seen: list[httpx.Request] = []
    hosts = "127.0.0.1,::1,169.254.169.254,::ffff:127.0.0.1,10.0.0.1"
    lim = limits(domains=hosts, dns={}, transport=fake_server(seen=seen))
    assert "public addresses" in str(error(url, lim))
    assert seen == []


def test_unresolvable_and_empty_answers_are_refused():
    assert "could not be resolved" in str(error("http://img.example.com/a.png",
                                                limits(dns={"example.com": [PUBLIC_V4]})))
    assert "could not be resolved" in str(error("http://example.com/a.png",
                                                limits(dns={"example.com": []})))


def test_a_slow_resolver_is_cut_off_at_the_time_limit():
    def slow(host: str, port: int) -> list[str]:  # FAKE DNS that hangs
        time.sleep(2)
        return [PUBLIC_V4]
    policy = RemotePolicy(("example.com",), 0.2, resolver=slow, transport=fake_server())
    started = time.monotonic()
    assert "too long" in str(error("http://example.com/a.png",
                                   ImageLimits(200_000, LIMITS.max_pixels, policy)))
    assert time.monotonic() - started < 1.5


# ------------------------------------------------------------------- the answer


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_are_refused_not_followed(status):
    seen: list[httpx.Request] = []
    redirect = lambda request: httpx.Response(  # noqa: E731
        status, headers={"location": "http://169.254.169.254/latest/meta-data"})
    err = error("http://example.com/a.png", limits(transport=fake_server(redirect, seen)))
    assert "redirect" in str(err) and not err.too_large
    assert len(seen) == 1


def test_http_errors_are_400s():
    err = error("http://example.com/a.png",
                limits(transport=fake_server(lambda r: httpx.Response(404))))
    assert "HTTP 404" in str(err) and not err.too_large


@pytest.mark.parametrize("content_type", ["text/html", "image/gif", "image/svg+xml", None])
def test_the_content_type_must_be_an_accepted_image_type(content_type):
    headers = {"content-type": content_type} if content_type else {}
    err = error("http://example.com/a.png", limits(transport=fake_server(
        lambda r: httpx.Response(200, headers=headers, content=png()))))
    assert "content type" in str(err)


def test_content_type_parameters_are_ignored_and_the_format_must_match():
    ok = fake_server(lambda r: httpx.Response(
        200, headers={"content-type": "Image/PNG; charset=binary"}, content=png()))
    assert decode_image_url("http://example.com/a.png", limits(transport=ok)).size == (8, 6)
    liar = fake_server(lambda r: httpx.Response(
        200, headers={"content-type": "image/jpeg"}, content=png()))
    assert "says JPEG" in str(error("http://example.com/a.png", limits(transport=liar)))


def test_encoded_bodies_are_refused():
    gzip = fake_server(lambda r: httpx.Response(
        200, headers={"content-type": "image/png", "content-encoding": "gzip"},
        content=iter([png()])))
    assert "encoding" in str(error("http://example.com/a.png", limits(transport=gzip)))


def test_a_declared_length_over_the_limit_is_refused_before_reading():
    big = fake_server(lambda r: httpx.Response(
        200, headers={"content-type": "image/png", "content-length": "5000000"},
        content=b"x" * 10))
    err = error("http://example.com/a.png", limits(transport=big, max_bytes=1000))
    assert err.too_large


def test_an_undeclared_body_over_the_limit_stops_the_download_mid_stream():
    produced: list[int] = []

    def endless():  # a FAKE body with no content-length that never ends
        while True:
            produced.append(1)
            yield b"\x89PNG" + b"\0" * 4092

    err = error("http://example.com/a.png", limits(
        max_bytes=50_000, transport=fake_server(lambda r: httpx.Response(
            200, headers={"content-type": "image/png"}, content=endless()))))
    assert err.too_large and "50000 bytes" in str(err)
    assert len(produced) < 30  # it stopped reading soon after the limit


def test_a_slow_body_is_cut_off_at_the_time_limit():
    def slow():  # a FAKE body that trickles
        for _ in range(100):
            time.sleep(0.05)
            yield b"\0" * 10

    started = time.monotonic()
    err = error("http://example.com/a.png", limits(
        timeout=0.3, transport=fake_server(lambda r: httpx.Response(
            200, headers={"content-type": "image/png"}, content=slow()))))
    assert "took longer" in str(err) and not err.too_large
    assert time.monotonic() - started < 2


def test_too_many_pixels_and_empty_bodies_take_the_usual_checks():
    huge = fake_server(lambda r: httpx.Response(
        200, headers={"content-type": "image/png"}, content=png((1000, 1000))))
    assert error("http://example.com/a.png", limits(transport=huge)).too_large
    empty = fake_server(lambda r: httpx.Response(200, headers={"content-type": "image/png"}))
    assert "empty" in str(error("http://example.com/a.png", limits(transport=empty)))


def test_transport_failures_are_400s():
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("FAKE: connection refused", request=request)

    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("FAKE: timed out", request=request)

    assert "could not be fetched" in str(error("http://example.com/a.png",
                                               limits(transport=fake_server(refuse))))
    assert "took longer" in str(error("http://example.com/a.png",
                                      limits(transport=fake_server(hang))))


def test_policy_from_settings():
    from server.api.handling import remote_policy
    from server.config import Settings

    assert remote_policy(Settings()) is None
    policy = remote_policy(Settings(remote_images=True, remote_image_domains="A.com, b.org",
                                    remote_image_timeout=3))
    assert policy is not None and policy.domains == ("a.com", "b.org") and policy.timeout == 3
