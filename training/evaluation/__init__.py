"""Evaluation of trained classifiers and bundles: metrics, threshold tuning, plots, reports."""
