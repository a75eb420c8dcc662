"""Scoring batch results: danger and hazard-label detection, text metrics, latency, plots."""
