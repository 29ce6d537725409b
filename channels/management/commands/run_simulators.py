"""python manage.py run_simulators --port 8100 — the channel simulators as their own process."""

from django.conf import settings
from django.core.management.base import BaseCommand

from channels.simulators.server import make_simulator_server
from channels.simulators.store import Store


class Command(BaseCommand):
    help = "Serve the WeChat Pay, Alipay and bank simulators on loopback (state kept in AGGPAY_SIMULATOR_STATE)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8100)
        parser.add_argument("--state", default=str(settings.AGGPAY_SIMULATOR_STATE))

    def handle(self, *args, **options):
        server = make_simulator_server(Store(options["state"]), host=options["host"], port=options["port"])
        kinds = ", ".join(sorted(server.get_app().apps)) or "none"
        self.stdout.write(f"simulators ({kinds}) on http://{options['host']}:{options['port']}/<kind>/")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
