"""Constrained architecture search: evolution, mathematical programming, Optuna, random."""
