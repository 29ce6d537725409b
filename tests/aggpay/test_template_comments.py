"""Django's ``{# … #}`` comment is one line only: written over two lines, it is not a comment and the page shows
it as text (a security trial saw "{# One refused event's review card …" on the refused-callback pages). Longer
comments are ``{% comment %}`` blocks."""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings

UNCLOSED = re.compile(r"\{#(?!.*#\})")


def test_no_template_opens_a_one_line_comment_it_does_not_close_on_that_line():
    templates = Path(settings.BASE_DIR) / "templates"
    found = [f"{path.relative_to(templates)}:{number}"
             for path in sorted(templates.rglob("*.html"))
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
             if UNCLOSED.search(line)]
    assert found == []
