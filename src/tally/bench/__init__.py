"""Benchmarks that print one JSON line each (`tally bench …`, or the scripts in `bench/`)."""
