"""Trace families for the analysis benchmark (bench/analysis.py).

* :mod:`bench.traces.independent` — the *checking* family: written from the issue, docs/INGEST.md
  §4 and SPEC.md only, without reading the classifier or ``hw_sim.scenarios`` (the *tuning*
  family the rules were developed against). Tune on one, check on the other.
"""
