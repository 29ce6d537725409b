"""Where merchant notifications may go: a merchant's `notify_url` is an address aggpay's workers POST to, so it
must not reach inside aggpay's own network (server-side request forgery). A merchant who sets
`http://127.0.0.1:6379/`, `http://10.0.0.5/admin` or `http://169.254.169.254/` (a cloud's metadata service) would
otherwise have aggpay's delivery worker post signed bodies there, every retry for a day.

Two checks, because a host name can be made to resolve anywhere:

- when a URL is given (the app's default, an order's or a refund's `notify_url`): a literal address that is not
  public, or `localhost`, is refused naming the field (design §5 rule 12);
- when a delivery connects (trades.services.events): the address the socket actually reached is checked, so a
  public-looking name that resolves to a private address — at once or only later (DNS rebinding) — gets no request.

`AGGPAY_NOTIFY_PRIVATE_ADDRESSES` (default: on when DEBUG, as in the demo and the tests whose receivers listen on
127.0.0.1; off in production) allows them, for deployments whose merchants live on a private network.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from django.conf import settings

REFUSED_HINT = "notifications go to public addresses only (AGGPAY_NOTIFY_PRIVATE_ADDRESSES allows private ones)"


def private_addresses_allowed() -> bool:
    return bool(getattr(settings, "AGGPAY_NOTIFY_PRIVATE_ADDRESSES", False))


def address_refused(address: str) -> bool:
    """Whether a delivery may not connect to ``address`` (an IP address as the socket reports it): loopback,
    private, link-local, shared, reserved, multicast or unspecified — anything but a public unicast address."""
    if private_addresses_allowed():
        return False
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone ("fe80::1%eth0") names no other host
    except ValueError:
        return True  # not an IP address (a Unix socket path): not somewhere a merchant's URL may lead
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return not ip.is_global or ip.is_multicast


def notify_url_refusal(url: str) -> str | None:
    """Why ``url`` may not receive notifications, judged from the URL alone (no DNS lookup: the connection is
    checked again when a delivery is sent), or None."""
    if private_addresses_allowed():
        return None
    try:
        host = (urlsplit(url).hostname or "").rstrip(".").lower()
    except ValueError:
        return None  # the URL field's own check says what is wrong with it
    if host == "localhost" or host.endswith(".localhost"):
        return f"{host} is this machine: {REFUSED_HINT}"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None  # a name: checked where the delivery connects
    if address_refused(host):
        return f"{host} is not a public address: {REFUSED_HINT}"
    return None
