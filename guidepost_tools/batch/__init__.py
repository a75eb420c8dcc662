"""Batch inference over JSONL datasets, in process or against a running server."""
