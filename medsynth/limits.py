"""Limits on what an LLM may send back, shared by the client (never caches beyond them) and the parsers.

Why a cap: answers are a few hundred tokens; a runaway or hostile server can send megabytes (or 100,000 nested
brackets) and every parse of it costs CPU on each replay. Above this an answer is a counted rejection. It sits at
the top of the package, below both `llm.client` and `generate.parse`, so neither layer imports the other for it.
"""

MAX_ANSWER_BYTES = 256 * 1024
