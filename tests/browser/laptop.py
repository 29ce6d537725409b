"""The laptop check of the browser tests: a staff page at 1366 px wide does not scroll sideways (the rule and the
measure are test_staff_pages_fit_a_laptop's, applied here to the one page a test is about)."""

from __future__ import annotations

from tests.browser.test_staff_pages_fit_a_laptop import LAPTOP, MEASURE


def assert_fits_a_laptop(page) -> None:
    """Resize to a 1366 × 768 laptop and assert nothing reaches past the window's right edge."""
    page.set_viewport_size(LAPTOP)
    sizes = page.evaluate(MEASURE)
    assert sizes["scrollWidth"] <= sizes["clientWidth"] and sizes["widest"] is None, (
        f"{page.url} is {sizes['scrollWidth']} px wide in a {sizes['clientWidth']} px window; "
        f"widest: {sizes['widest']}")
