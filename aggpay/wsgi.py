import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aggpay.settings")
application = get_wsgi_application()


def _freeze_loaded_objects() -> None:
    """Load the URLconf (and with it every view module) now, then move everything loaded so far out of the
    garbage collector's reach (``gc.freeze``, as Instagram does for its Django workers). Python's full collections
    otherwise walk the whole application — models, URL patterns, DRF fields, templates — again and again while
    requests allocate: 6% of the instructions of an order create (callgrind, docs/benchmarks.md). Nothing loaded
    at startup is garbage, and objects made later are collected as before."""
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 (imports the views; Django would do it on the first request)
    gc.collect()
    gc.freeze()


_freeze_loaded_objects()
