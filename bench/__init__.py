"""The benchmarks: a package run from the repository root, `python -m bench.run` (`make bench`),
`python -m bench.serving`, `python -m bench.index`, `python -m bench.beam`, ... (see bench/README.md)."""
