"""Benchmarks on the dev set (see bench/README.md); a package so that tests can reuse their code."""
