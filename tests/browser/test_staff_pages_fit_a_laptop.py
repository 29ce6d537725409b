"""Staff pages are workbenches used on office laptops: at 1366 px wide no staff page may scroll sideways. Wide
tables scroll inside their own box, long ids wrap, filter bars wrap — the page itself stays as wide as the window.

With real data, made through the public interfaces: the demo's morning of trades (aggpay/management/demo_trades.py:
refunds, a late payment, an unknown outcome, a refused notify_url, an abnormal refund), three channel notices the
live server refused, and onboarding applications in draft, submitted and in review. Each role signs in and the
test follows every link of its home page and sidebar, then one row link of each table on those pages (a trade, a
merchant, a channel account, a refused callback, an application under review …), plus pages only a search opens
(a trade search by merchant number, finance's open day and a statement)."""

from __future__ import annotations

import io
import os
import re
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from django.core.management import call_command
from django.utils import timezone

from aggpay.management import demo, demo_trades
from aggpay.roles import ROLES
from channels.services.demo import demo_channel_accounts_seed, demo_merchant_contracts_seed
from merchants.models import Merchant
from merchants.services.onboarding import application_review_start, application_submit
from tests.channels.test_refused_callbacks import refused  # noqa: F401 - three refused notices (a fixture)
from tests.merchants.test_workbench_queue import draft
from tests.trades.conftest import shop  # noqa: F401 - the paying shop persona, which `refused` uses (a fixture)
from trades.models import Order

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True),
              pytest.mark.usefixtures("quiet_channels")]

LAPTOP = {"width": 1366, "height": 768}

# Links that are not pages of ours to lay out: downloads, Django's own admin (its own stylesheet), signing out.
NOT_PAGES = re.compile(r"^/admin/|/staff/logout/|\.(csv|svg|pem|png|jpe?g|pdf)$|/documents/\d+/")

# How wide the page is, and the outermost element reaching past the window's right edge other than inside a box that
# scrolls sideways (a .table-scroll): it makes the page scroll, or, under an ancestor that hides overflow, is cut off
# where nobody can scroll to it. clientWidth, not innerWidth: a laptop's vertical scrollbar takes its share.
MEASURE = """() => {
  // Inline forms folded in <details> (edit a rate, add a product) are part of the page: open them all.
  document.querySelectorAll('details').forEach(d => { d.open = true; });
  const root = document.documentElement, room = root.clientWidth;
  const describe = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
    + [...el.classList].map(c => '.' + c).join('');
  const sticksOut = el => el.getBoundingClientRect().right > room + 0.5;
  const inScrollBox = el => {
    for (let up = el.parentElement; up && up !== document.body; up = up.parentElement) {
      if (['auto', 'scroll'].includes(getComputedStyle(up).overflowX)) return true;
    }
    return false;
  };
  let widest = null;
  for (const el of document.body.querySelectorAll('*')) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 || !el.checkVisibility() || !sticksOut(el) || (el.parentElement !== document.body && sticksOut(el.parentElement))
        || inScrollBox(el)) continue;
    if (!widest || box.right > widest.right) {
      const path = [];
      for (let up = el; up && up !== document.body && path.length < 4; up = up.parentElement) path.unshift(describe(up));
      widest = {right: Math.round(box.right), width: Math.round(box.width), what: path.join(' > ')};
    }
  }
  return {scrollWidth: root.scrollWidth, clientWidth: room, widest};
}"""


def _shape(url: str) -> str:
    """A page's kind: its path with ids (segments with digits) blanked, and its query's names and values — one
    trade detail stands for all, each queue tab counts on its own."""
    parts = urlsplit(url)
    path = "/".join("#" if re.search(r"\d", segment) else segment for segment in parts.path.split("/"))
    query = sorted((k, v) for k, v in parse_qsl(parts.query) if k != "page")
    return path + ("?" + urlencode(query) if query else "")


def _links(within, selector: str) -> list[str]:
    return within.locator(selector).evaluate_all("els => els.map(e => e.getAttribute('href'))")


@pytest.fixture
def morning(shop, refused, simulator_server, live_server, settings, callback_receiver, staff_member):  # noqa: F811
    """The demo merchant's morning of trades, the refused notices, and onboarding in every open state."""
    settings.AGGPAY_PUBLIC_BASE_URL = live_server.url
    settings.AGGPAY_SIMULATOR_BASE_URL = simulator_server.base_url
    call_command("seed_demo", "--allow-published-passwords", "--skip-channels", "--skip-staff", stdout=io.StringIO())
    demo_channel_accounts_seed(simulator_root=simulator_server.base_url)
    merchant = Merchant.objects.get(merchant_no=demo.DEMO_MERCHANT_NO)
    demo_merchant_contracts_seed(merchant=merchant, simulator_root=simulator_server.base_url)
    report = demo_trades.demo_trades_seed(merchant=merchant, base_url=live_server.url,
                                          simulator_root=simulator_server.base_url, notify_url=callback_receiver.url)
    assert report.made and not report.notes, report.notes

    clerk = staff_member("onboarding_clerk", username="wang.onboarding")
    reviewer = staff_member("risk_officer", username="zhao.risk")
    applications = [draft(clerk, n) for n in range(1, 8)]
    for application in applications[:5]:
        application_submit(application_id=application.pk, actor=clerk)
    application_review_start(application_id=applications[0].pk, actor=reviewer)
    return {"merchant": merchant, "applications": applications}


def _pages_of(page, base: str, extra: list[str]) -> list[str]:
    """The role's pages: its home, every link of the home page and sidebar, then one row link per table on those
    pages (one page of each kind), and the ``extra`` pages (those the role may not open answer 403: skipped)."""
    def ours(href: str | None) -> str | None:
        if not href or href.startswith(("#", "javascript:", "mailto:")):
            return None
        url = href if href.startswith("http") else base + (href if href.startswith("/") else "/" + href)
        if not url.startswith(base) or NOT_PAGES.search(urlsplit(url).path):
            return None
        return url.split("#")[0]

    seen: dict[str, str] = {}

    def add(url: str | None) -> bool:
        if url and _shape(url) not in seen:
            seen[_shape(url)] = url
            return True
        return False

    add(base + "/staff/")
    for href in _links(page, "aside nav a, main .section-card a"):
        add(ours(href))
    first_level = list(seen.values())
    for url in first_level:
        if page.goto(url).status != 200:
            continue
        for table in page.locator("main table").all():
            for href in _links(table, "tbody a[href]"):
                if add(ours(href)):
                    break
    pages = list(seen.values())
    return pages + [url for url in extra if url not in pages]


def test_no_staff_page_scrolls_sideways_on_a_1366_pixel_laptop_for_any_role(morning, staff_member, sign_in, page,
                                                                              live_server, shots):
    base = live_server.url
    merchant = morning["merchant"]
    today = timezone.localdate().isoformat()
    refunded = Order.objects.filter(merchant=merchant, out_trade_no="DEMO-0008").get()  # two refunds, bank-paid
    extra = [
        f"{base}/staff/trades/?q={merchant.merchant_no}",
        f"{base}/staff/trades/{refunded.pk}/",
        f"{base}/staff/merchants/{merchant.merchant_no}/",
        f"{base}/staff/finance/?to={today}&merchant_no={merchant.merchant_no}&date={today}",
    ]
    overflowing: list[str] = []
    visited: dict[str, list[str]] = {}
    for role in ROLES:
        staff_member(role.slug, username=f"{role.slug}-laptop")
        page.context.clear_cookies()  # the previous role signs out
        sign_in(f"{role.slug}-laptop")
        page.set_viewport_size(LAPTOP)
        visited[role.slug] = []
        for url in _pages_of(page, base, extra):
            response = page.goto(url)
            if response.status != 200 or "text/html" not in response.headers.get("content-type", ""):
                continue  # another role's page (403), or not a page
            path = url.removeprefix(base)
            visited[role.slug].append(path)
            sizes = page.evaluate(MEASURE)
            too_wide = sizes["scrollWidth"] > sizes["clientWidth"] or sizes["widest"] is not None
            if too_wide:
                widest = sizes["widest"] or {}
                overflowing.append(
                    f"{role.slug}: {path} is {sizes['scrollWidth']} px wide in a {sizes['clientWidth']} px window "
                    f"(+{sizes['scrollWidth'] - sizes['clientWidth']}); widest: {widest.get('what')} "
                    f"({widest.get('width')} px, to x={widest.get('right')})")
            if too_wide or os.environ.get("AGGPAY_SCREENSHOT_DIR"):  # for a person to look at the page
                name = re.sub(r"[^A-Za-z0-9]+", "-", path).strip("-")
                page.screenshot(path=str(shots / f"laptop-{role.slug}-{name}.png"), full_page=True)

    # The crawl reached each role's pages, and the pages this test is about: trades listed by a search, a trade,
    # a merchant with its contracts and apps, the audit log.
    assert all(len(paths) >= 3 for paths in visited.values()), visited
    everywhere = {path for paths in visited.values() for path in paths}
    assert {url.removeprefix(base) for url in extra} <= everywhere, visited
    assert "/staff/admin/audit/" in everywhere and "/staff/trades/queues/abnormal/" in everywhere, visited
    assert not overflowing, "staff pages wider than a 1366 px laptop:\n" + "\n".join(overflowing)
