"""Remote `http(s)` image URLs, fetched without letting a client reach inside the network (SSRF).

Off unless `remote_images` is set. When on, a URL is fetched only if all of these hold:

- the scheme is http or https, and the URL carries no user name or password;
- the host is on the allow-list (`remote_image_domains`): the name itself or a subdomain of
  it (an IP literal must be listed exactly; `*` allows any host, the address checks still hold);
- every address the host resolves to is a public one: no private, loopback, link-local,
  multicast, reserved, unspecified, shared (CGNAT) or cloud-metadata address, IPv4 addresses
  inside IPv6 (mapped, 6to4, Teredo) included;
- the connection goes to the vetted address itself (no second DNS lookup can swap it): the URL
  is rewritten to the IP, the `Host` header and TLS SNI / certificate check keep the name;
- the answer is a 2xx (a redirect is refused, never followed) with an accepted image
  content type and no content encoding; its body is read in chunks and the download stops as
  soon as it passes `max_image_bytes`, or once `remote_image_timeout` has passed.

Then the bytes take the same decoding path as a data: URL. Every failure is an `ImageError`
(a 400, or a 413 when the image is too large).
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx

from server.images.decoding import ACCEPTED, DecodeLimits, ImageError, decode_image_bytes

if TYPE_CHECKING:
    from PIL import Image

# host, port -> every address the host resolves to (as text)
Resolver = Callable[[str, int], Sequence[str]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA_ADDRESSES = frozenset({ipaddress.ip_address("169.254.169.254"),
                                ipaddress.ip_address("fd00:ec2::254")})
CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64 = ipaddress.ip_network("64:ff9b::/96")  # IPv4 addresses reached through a NAT64 gateway


def system_resolver(host: str, port: int) -> list[str]:
    """The operating system's resolver (getaddrinfo), TCP addresses only."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True)
class RemotePolicy:
    """What `decode_image_url` needs to fetch http(s) images; built from Settings."""

    domains: tuple[str, ...]
    timeout: float = 10.0
    resolver: Resolver = field(default=system_resolver, compare=False)
    # tests inject an httpx.MockTransport; None means a real connection to the pinned address
    transport: httpx.BaseTransport | None = field(default=None, compare=False)

    @classmethod
    def from_setting(cls, domains: str, timeout: float) -> RemotePolicy:
        return cls(parse_domains(domains), timeout)


def parse_domains(value: str) -> tuple[str, ...]:
    """`"Example.com, .cdn.net,*.img.org"` → `("example.com", "cdn.net", "img.org")`."""
    out = []
    for entry in value.split(","):
        entry = entry.strip().lower().rstrip(".")
        if entry != "*":
            entry = entry.removeprefix("*.").lstrip(".")
        if entry:
            out.append(_ascii_host(entry) if entry != "*" else entry)
    return tuple(out)


def _ascii_host(name: str) -> str:
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:
        return name


def host_allowed(host: str, domains: Sequence[str]) -> bool:
    """Is `host` (lower-case ASCII, as in a URL) one of `domains` or a subdomain of one?"""
    host = host.lower().rstrip(".")
    if not host:
        return False
    literal = _ip_or_none(host)
    if literal is not None:  # IP literals: listed exactly, or "*"
        return any(d == "*" or _ip_or_none(d) == literal for d in domains)
    return any(d == "*" or host == d or (host.endswith("." + d) and _ip_or_none(d) is None)
               for d in domains)


def _ip_or_none(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def refusal(address: str) -> str | None:
    """Why the server must not connect to `address`, or None if it is a public address."""
    ip = _ip_or_none(address)
    if ip is None:
        return "not an IP address"
    candidates: list[IPAddress] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # the connection goes to the IPv4 address itself
            candidates = [ip.ipv4_mapped]
        elif ip in NAT64:  # a NAT64 gateway forwards to the IPv4 address
            candidates = [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
        else:  # 6to4 and Teredo tunnel to an IPv4 address: judge it first, then the whole
            candidates = [a for a in (ip.sixtofour, ip.teredo[1] if ip.teredo else None)
                          if a is not None] + [ip]
    for candidate in candidates:
        reason = _refusal_of(candidate)
        if reason:
            return reason if candidate is ip else f"{reason} (inside {ip})"
    return None


def _refusal_of(ip: IPAddress) -> str | None:
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    checks = (("unspecified", ip.is_unspecified), ("loopback", ip.is_loopback),
              ("link-local", ip.is_link_local), ("multicast", ip.is_multicast),
              ("reserved", ip.is_reserved), ("private", ip.is_private),
              ("shared (CGNAT)", isinstance(ip, ipaddress.IPv4Address) and ip in CGNAT),
              ("site-local", isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local))
    for name, hit in checks:
        if hit:
            return f"a {name} address"
    if not ip.is_global:
        return "not a public address"
    return None


def fetch_image(url: str, limits: DecodeLimits, policy: RemotePolicy) -> Image.Image:
    """Fetch and decode a remote image under `policy` (see the module docstring)."""
    deadline = time.monotonic() + policy.timeout
    raw, fmt = fetch_bytes(url, limits.max_bytes, policy, deadline)
    return decode_image_bytes(raw, fmt, limits)


def fetch_bytes(url: str, max_bytes: int, policy: RemotePolicy, deadline: float
                ) -> tuple[bytes, str]:
    """The image's bytes and its PIL format name, or an ImageError."""
    try:
        parsed = httpx.URL(url)
    except Exception:
        raise ImageError("image_url is not a valid URL") from None
    if parsed.scheme not in ("http", "https"):
        raise ImageError("image_url must be a data:, http: or https: URL")
    if parsed.userinfo:
        raise ImageError("image URLs with a user name or password are not accepted")
    host = parsed.raw_host.decode("ascii").lower().rstrip(".")
    if not host_allowed(host, policy.domains):
        raise ImageError(f"image host {host!r} is not on this server's allow-list of "
                         "image domains")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    address = _vetted_address(host, port, policy, deadline)

    pinned = parsed.copy_with(host=address)
    headers = {"Host": parsed.netloc.decode("ascii"), "Accept": ", ".join(sorted(ACCEPTED)),
               "Accept-Encoding": "identity", "User-Agent": "cot-server"}
    extensions = {"sni_hostname": host} if parsed.scheme == "https" else {}
    remaining = max(deadline - time.monotonic(), 0.001)
    try:
        with httpx.Client(transport=policy.transport or httpx.HTTPTransport(retries=0),
                          follow_redirects=False, trust_env=False,
                          timeout=httpx.Timeout(remaining)) as client:
            request = client.build_request("GET", pinned, headers=headers,
                                           extensions=extensions)
            response = client.send(request, stream=True)
            try:
                return _read(response, max_bytes, deadline)
            finally:
                response.close()
    except ImageError:
        raise
    except httpx.TimeoutException:
        raise ImageError(f"fetching the image took longer than {policy.timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise ImageError(f"the image could not be fetched: {type(exc).__name__}") from None


def _vetted_address(host: str, port: int, policy: RemotePolicy, deadline: float) -> str:
    """Resolve `host` once; refuse unless every address is public. Returns the one to use."""
    literal = _ip_or_none(host)
    if literal is not None:
        addresses = [str(literal)]
    else:
        addresses = _resolve(policy.resolver, host, port, deadline)
    if not addresses:
        raise ImageError(f"image host {host!r} could not be resolved")
    for address in addresses:
        reason = refusal(address)
        if reason:
            raise ImageError(f"image host {host!r} resolves to {reason}; this server only "
                             "fetches images from public addresses")
    return str(_ip_or_none(addresses[0]))


def _resolve(resolver: Resolver, host: str, port: int, deadline: float) -> list[str]:
    """`resolver(host, port)` within the time left. getaddrinfo cannot be interrupted, so it runs
    in a daemon thread that is abandoned (never waited for, not even at exit) if it hangs."""
    answer: list[Sequence[str] | BaseException] = []
    thread = threading.Thread(target=lambda: answer.append(_call(resolver, host, port)),
                              name="image-dns", daemon=True)
    thread.start()
    thread.join(max(deadline - time.monotonic(), 0.001))
    if not answer:
        raise ImageError(f"resolving image host {host!r} took too long")
    if isinstance(answer[0], BaseException):
        raise ImageError(f"image host {host!r} could not be resolved")
    return [str(a) for a in answer[0]]


def _call(resolver: Resolver, host: str, port: int) -> Sequence[str] | BaseException:
    try:
        return list(resolver(host, port))
    except BaseException as exc:  # handed back to the waiting thread
        return exc


def _read(response: httpx.Response, max_bytes: int, deadline: float) -> tuple[bytes, str]:
    if response.is_redirect or 300 <= response.status_code < 400:
        raise ImageError(f"the image URL answered with a redirect ({response.status_code}); "
                         "redirects are not followed: send the final URL")
    if not response.is_success:
        raise ImageError(f"the image URL answered HTTP {response.status_code}")
    mime = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if mime not in ACCEPTED:
        raise ImageError(f"the image URL returned content type {mime or '(none)'!r}; "
                         "accepted: image/png, image/jpeg, image/webp")
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise ImageError(f"the image URL returned content encoding {encoding!r}; "
                         "only unencoded images are accepted")
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise ImageError(f"image is larger than {max_bytes} bytes", too_large=True)
    body = bytearray()
    # as they arrive (at most one socket read each); no content encoding, so these are raw
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > max_bytes:
            raise ImageError(f"image is larger than {max_bytes} bytes", too_large=True)
        if time.monotonic() > deadline:
            raise ImageError("fetching the image took longer than its time limit")
    return bytes(body), ACCEPTED[mime]
