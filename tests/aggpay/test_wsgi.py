"""aggpay/wsgi.py: the WSGI application, with what it loaded at startup kept out of the collector's way."""

from __future__ import annotations

import gc


def test_loading_the_application_freezes_what_startup_made():
    gc.unfreeze()
    import aggpay.wsgi

    aggpay.wsgi._freeze_loaded_objects()
    try:
        assert gc.get_freeze_count() > 10_000  # Django, the URLconf and every view module
        assert callable(aggpay.wsgi.application)
    finally:
        gc.unfreeze()
