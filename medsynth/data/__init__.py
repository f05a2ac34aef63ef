"""Data: the run store, the exports derived from it, JSON Lines I/O, word tokens, and readers of real corpora.

The store is the single source of truth of a build; exports and corpora readers are pure functions over files.
"""
