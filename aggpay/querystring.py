"""Query strings of staff list pages: the links of a page keep the filters the person chose."""

from __future__ import annotations


def query_without(request, *names: str) -> str:
    """The request's query string without ``names`` (say "page", for the pagination links to add their own, or a
    tab's own parameter, for the tabs to add theirs); every other parameter kept, repeated ones included."""
    params = request.GET.copy()
    for name in names:
        params.pop(name, None)
    return params.urlencode()
