"""Throughput benchmarks of elastic-connector (``python -m benchmarks``, ``nox -s bench``).

Sections: core mapping and the pattern parser against the reference parser
(``benchmarks.mapping``), end-to-end ingest through the real daemon (``benchmarks.ingest``) and
alert polling (``benchmarks.alerts``). ``benchmarks.runner`` prints a table and writes
``benchmarks/results/latest.json``; ``docs/performance.md`` explains the numbers.
"""
