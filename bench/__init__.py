"""Benchmarks of the course site and the lab engine: `make bench` or `python -m bench NAME`.

They print figures and record them in docs/benchmarks.md; they never assert on timings.
"""
