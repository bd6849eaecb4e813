"""Reproducible experiments and benchmarks; each writes a table and a plot to experiments/results/."""
