"""Real servers on 127.0.0.1 for the tests and the benchmark: one launcher of each kind.

``net``        free ports (THE one ``free_port``/``free_ports``) and ``wait_port``
``proc``       child processes that die with their parent, and a clean stop
``nginx``      a private nginx: sites (origin, cdn) on http and/or https, per-route and
               whole-site bandwidth caps, a Hub-shaped signed redirect, a JSON access log
``accesslog``  that access log, parsed into records, and what tests count from it
``tls``        a throwaway certificate authority (trustme) and a server certificate
``hubsign``    the signer behind the Hub route (nginx cannot compute a signature itself)
``throttle``   a token-bucket TCP proxy: the whole-site cap nginx does not have
``seaweed``    a private SeaweedFS (``weed mini``) with an S3 gateway

Nothing here imports pytest or runanywhere: the benchmark runs it too (``python -m bench.run``
from the repository root; the tests get the root on ``sys.path`` from pytest's ``pythonpath``).
"""
