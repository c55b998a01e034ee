"""The download benchmark (``python -m bench.run``) and the fleet case (``python -m bench.fleet``).

Run from the repository root, so that ``bench`` and the shared servers in ``harness`` import
as packages. See bench/README.md.
"""
