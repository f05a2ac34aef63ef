"""Evaluate: scores, error diagnosis, the zero-shot LLM baseline and the benchmark harness."""
