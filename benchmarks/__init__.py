"""fastnn's pytest-benchmark suite (``python -m pytest benchmarks/``) and the report generator.

The harness itself (configurations, the NumPy baseline, peers, the compare table) ships in the
package as ``fastnn.bench``; ``fastnn bench`` runs it from any install.
"""
