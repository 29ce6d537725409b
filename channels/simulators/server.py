"""Serving the simulators: the combined WSGI app, a threaded server, and the Django in-process mount."""

from __future__ import annotations

import importlib
import threading
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from channels.simulators.core import SimResponse
from channels.simulators.store import Store

# kind → "module.ClassName" of its SimulatorApp; each mounted at /<kind>/.
SIMULATORS = {
    "wechatpay": "channels.simulators.wechatpay.WechatPaySimulator",
    "alipay": "channels.simulators.alipay.AlipaySimulator",
    "bank": "channels.simulators.bank.BankSimulator",
}


class CombinedSimulators:
    """One WSGI app serving every simulator kind under /<kind>/ (kinds whose module is missing are skipped)."""

    def __init__(self, store: Store):
        self.store = store
        self.apps = {}
        for kind, dotted in SIMULATORS.items():
            module_name, class_name = dotted.rsplit(".", 1)
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name == module_name:
                    continue
                raise
            self.apps[kind] = getattr(module, class_name)(store)

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "/")
        parts = path.lstrip("/").split("/", 1)
        app = self.apps.get(parts[0])
        if app is None:
            body = SimResponse.json({"kinds": sorted(self.apps)}).body
            start_response("404 Not Found", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        environ = dict(environ)
        environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + "/" + parts[0]
        environ["PATH_INFO"] = "/" + (parts[1] if len(parts) > 1 else "")
        return app(environ, start_response)


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - signature from the stdlib
        pass


def make_simulator_server(store: Store, *, host: str = "127.0.0.1", port: int = 0):
    """A threaded WSGI server on loopback. ``port=0`` picks a free port (tests)."""
    return make_server(host, port, CombinedSimulators(store), server_class=_ThreadingWSGIServer,
                       handler_class=_QuietHandler)


class SimulatorThread:
    """Run the simulators in a background thread on their own port (tests, benchmarks)."""

    def __init__(self, store: Store, host: str = "127.0.0.1", port: int = 0):
        self.server = make_simulator_server(store, host=host, port=port)
        self.app: CombinedSimulators = self.server.get_app()
        self.thread = threading.Thread(target=self.server.serve_forever, name="simulators", daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> SimulatorThread:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
