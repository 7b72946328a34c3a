"""Adapters for public tabular NAS benchmarks (read from local files, never downloaded)."""
