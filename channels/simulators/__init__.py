"""Loopback channel simulators: strict peers of WeChat Pay, Alipay and a bank gateway (design §6).

They exist only because these machines cannot reach the channels. Each verifies our signatures, signs its
answers, keeps its own trade state (in its own SQLite file, not our database), calls back with retries, serves
bills and runs onboarding reviews, and injects faults on demand. They are plain WSGI apps with no access to
aggpay's models: the demo mounts them in-process under ``/_sim/``; tests and benchmarks run them as a separate
server (``python manage.py run_simulators``) or in a thread on their own port.
"""
