"""Benchmarks: downtime, install time, certificate work, TLS cost (`make bench`); never part of `make test`."""
