"""`make bench`: how fast the event chain is, and how far from the limit.

One run, one broker: a pass-through relay baseline (the physical limit of this
design), the chain's closed-loop throughput, and its open-loop latency. The
figures go to a table on stdout and to `.bench/latest.json` for comparisons.
"""
