"""Every staff page a role can reach works: a regression guard over the demo data (README.md "Demo logins").

The demo is seeded once for the module the way ``make demo`` does (``seed_demo``: staff users, Demo Tea House, the
channel accounts, the morning's trades over live HTTP — ~20 s), then each role signs in with its demo password
and crawls breadth-first every same-site link under /staff/ and /admin/ reachable from /staff/, GET only.
Design §5 rule 11 (every staff page permission-checked) and rule 10 (PII masked) are what it checks, page by page.
"""

from __future__ import annotations

import io
import re
import socket
import traceback
from collections import Counter, deque
from contextlib import closing
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

import pytest
import requests
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client, override_settings
from django.urls import Resolver404, resolve

from aggpay.management import demo
from aggpay.roles import ROLES

pytestmark = pytest.mark.slow

MAX_PAGES = 400
# Query parameters that only page or order a list (ours and the Django admin's ``p``/``o``): a few of each list's
# variants are enough, the rest would spend the cap on the same rows.
PAGING_PARAMS = {"page", "p", "o", "sort", "order", "ordering", "before", "after", "cursor"}
PAGING_VARIANTS = 3
# Filtered variants of one route and objects of one route (each order's page): a few of each exercise the
# template, more only slow the crawl. Fewer in the admin, whose filter sidebar and history pages multiply them.
VARIANTS_PER_ROUTE = {"/staff/": 40, "/admin/": 8}
SKIP_PATHS = ("/staff/logout/", "/admin/logout/")


def _free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def demo_data(django_db_setup, django_db_blocker, simulator_server):
    """``seed_demo`` as ``make demo`` runs it, committed once for the module and flushed afterwards (as a
    transactional test's teardown does). The channel accounts are provisioned at the session's simulators first
    and the merchant's contracts made there (tests/aggpay/test_demo_trades.py ``demo_merchant``): the seed then
    finds them and makes the trades, serving the app itself on a free port for the channels' callbacks.
    Returns the full PII values stored (``_stored_pii``)."""
    from channels.services.demo import demo_channel_accounts_seed, demo_merchant_contracts_seed
    from merchants.models import Merchant

    port = _free_port()
    with django_db_blocker.unblock():
        try:
            with override_settings(AGGPAY_SIMULATORS=True, AGGPAY_PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
                                   AGGPAY_SIMULATOR_BASE_URL=simulator_server.base_url):
                call_command("seed_demo", "--allow-published-passwords", "--skip-channels", stdout=io.StringIO())
                demo_channel_accounts_seed(simulator_root=simulator_server.base_url)
                merchant = Merchant.objects.get(merchant_no=demo.DEMO_MERCHANT_NO)
                demo_merchant_contracts_seed(merchant=merchant, simulator_root=simulator_server.base_url)
                out = io.StringIO()
                call_command("seed_demo", "--allow-published-passwords", stdout=out)
            assert "demo trades in" in out.getvalue(), out.getvalue()
            _submit_sample_application()
            pii = _stored_pii()
            assert pii, "nothing to look for: the PII check below would pass vacuously"
            yield pii
        finally:
            # The WeChat simulator's delayed notices must not reach a later test (conftest ``quiet_channels``).
            requests.delete(f"{simulator_server.base_url}/wechatpay/_control/callbacks", timeout=10)
            call_command("flush", interactive=False, verbosity=0)


def _submit_sample_application() -> None:
    """Demo Tea House has no legal person, contact or settlement account; the seed's applicants
    (aggpay/management/demo_onboarding.py) have, and so has the sample Tea House record (tests/merchants/records.py)
    the demo clerk drafts and submits here with its documents, the one the merchant tests know: every such ID number,
    phone and account is what the pages must mask."""
    from django.contrib.auth import get_user_model

    from merchants.services.onboarding import application_submit, document_add, merchant_onboard_draft
    from tests.merchants.records import png, record

    clerk = get_user_model().objects.get(username=demo.DEMO_USERNAMES["onboarding_clerk"])
    application = merchant_onboard_draft(actor=clerk, data=record())
    for doc_type in ("licence", "id_front", "id_back", "bank_card", "store_front", "store_inside"):
        document_add(merchant_id=application.merchant_id, actor=clerk, doc_type=doc_type,
                     uploaded_file=png(f"{doc_type}.png"))
    application_submit(application_id=application.pk, actor=clerk)


def _stored_pii() -> dict[str, str]:
    """Every full ID number, bank account number and phone number stored for a merchant, value → where."""
    from merchants.models import Merchant, SettlementAccount

    found = {}
    for merchant in Merchant.objects.all():
        for name in ("legal_person_id_number", "contact_phone"):
            value = getattr(merchant, name)
            if value:
                found[value] = f"Merchant {merchant.merchant_no}.{name}"
    for account in SettlementAccount.objects.all():
        found[account.account_number] = f"SettlementAccount {account.pk}.account_number"
    return found



# --- the crawl ------------------------------------------------------------------------------------------------


class _Page(HTMLParser):
    """The links and the title of an HTML page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.title: str | None = None
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.links.append(href)
        elif tag == "title" and self.title is None:
            self._in_title, self.title = True, ""

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False

    def handle_data(self, data):
        if self._in_title:
            self.title += data


@dataclass
class Crawl:
    role: str
    client: Client
    user: object
    pii: dict[str, str]
    visited: dict[str, int] = field(default_factory=dict)  # url → status
    problems: list[str] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)
    _seen: set = field(default_factory=set)
    _variants: Counter = field(default_factory=Counter)

    def run(self, start: str = "/staff/") -> None:
        queue = deque([(start, None)])
        self._seen.add(start)
        while queue and len(self.visited) < MAX_PAGES:
            url, referrer = queue.popleft()
            for link in self.visit(url, referrer):
                if link not in self._seen and self._worth_visiting(link):
                    self._seen.add(link)
                    queue.append((link, url))
        self.skipped["left in the queue at the cap"] += len(queue)

    def _worth_visiting(self, url: str) -> bool:
        """De-duplicates lists that differ only by paging/sorting (a few each), and caps one route's variants."""
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        filters = urlencode(sorted((k, v) for k, v in query if k not in PAGING_PARAMS))
        try:
            route = resolve(parts.path).route
        except Resolver404:
            route = parts.path  # fetched anyway: a rendered link that 404s is a finding
        route_cap = VARIANTS_PER_ROUTE["/admin/" if parts.path.startswith("/admin/") else "/staff/"]
        for key, cap in (((parts.path, filters), PAGING_VARIANTS), (route, route_cap)):
            if self._variants[key] >= cap:
                self.skipped["similar to pages visited"] += 1
                return False
        for key in ((parts.path, filters), route):
            self._variants[key] += 1
        return True

    def visit(self, url: str, referrer: str | None) -> list[str]:
        where = f"{self.role} GET {url}" + (f" (linked from {referrer})" if referrer else "")
        try:
            response = self.client.get(url)
        except Exception as exc:  # the test client re-raises the view's exception: that is a 500
            head = "".join(traceback.format_exception(exc)[-6:]).strip()
            self.visited[url] = 500
            self.problems.append(f"{where}: 500\n{head}")
            return []
        status = response.status_code
        self.visited[url] = status
        body = b"".join(response.streaming_content) if response.streaming else response.content
        if status >= 500:
            self.problems.append(f"{where}: {status}")
        elif status == 404 and referrer:
            self.problems.append(f"{where}: 404 for a link the page rendered")
        elif status == 403:
            # Every URL crawled was shown to the role (a link or a redirect): a 403 behind it is a bug either way,
            # named by the permission the forbidden page says is missing (staff/forbidden.html) when it says one.
            named = re.search(rb"<code>(.*?)</code>", body)
            missing = named.group(1).decode() if named else ""
            held = [perm for perm in missing.split(", ") if "." in perm and self.user.has_perm(perm)]
            self.problems.append(f"{where}: 403 for a link rendered to this role"
                                 + (f" (missing {missing})" if missing else "")
                                 + (f", though the role holds {', '.join(held)}" if held else ""))
        text = body.decode(response.charset or "utf-8", errors="replace")
        for value, stored in self.pii.items():
            if value in text:
                self.problems.append(f"{where}: shows the full {stored} ({status})")
        if status in (301, 302, 303, 307, 308):
            return self._same_site([response["Location"]], url)
        if "text/html" not in response.get("Content-Type", ""):
            return []  # a download: fetched, checked for PII, not parsed
        page = _Page()
        page.feed(text)
        if not (page.title or "").strip():
            self.problems.append(f"{where}: HTML page without a <title> ({status})")
        return self._same_site(page.links, url)

    def _same_site(self, hrefs: list[str], base: str) -> list[str]:
        links = []
        for href in hrefs:
            parts = urlsplit(urljoin(f"http://testserver{base}", href.strip()))
            if parts.scheme not in ("http", "https") or parts.netloc != "testserver":
                continue
            if not parts.path.startswith(("/staff/", "/admin/")):
                continue
            if parts.path in SKIP_PATHS:
                self.skipped["logout"] += 1
                continue
            links.append(parts.path + (f"?{parts.query}" if parts.query else ""))
        return links


@pytest.mark.parametrize("role", [role.slug for role in ROLES])
def test_every_staff_page_a_role_can_reach_from_its_home_page_works(demo_data, db, role, record_property):
    """No 5xx, no 404 or 403 behind a link the page showed the role, a <title> on every HTML page and no full
    ID number, bank account or phone number anywhere (design §5 rules 10 and 11)."""
    client = Client()
    username = demo.DEMO_USERNAMES[role]
    assert client.login(username=username, password=demo.DEMO_STAFF_PASSWORD)
    crawl = Crawl(role=role, client=client, user=get_user_model().objects.get(username=username), pii=demo_data)
    crawl.run()

    statuses = Counter(crawl.visited.values())
    record_property("pages_visited", len(crawl.visited))
    print(f"\n{role}: {len(crawl.visited)} pages visited, statuses {dict(statuses)}, skipped {dict(crawl.skipped)}")
    assert crawl.visited["/staff/"] == 200
    # The home page links at least the role's section and the pages under it: a crawl that stopped at the home
    # page would check nothing.
    assert len(crawl.visited) > 5, crawl.visited
    if crawl.problems:
        pytest.fail(f"{role}: {len(crawl.problems)} problems:\n" + "\n".join(crawl.problems), pytrace=False)
