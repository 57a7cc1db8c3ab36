"""Benchmarks (`make bench`): each measures the project and a physical baseline in the same run."""
