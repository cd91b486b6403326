"""The benchmark and its hand-written limit, outside the runtime package: `make bench`,
`pmcost bench` or `python -m benchmarks` (the same options)."""
