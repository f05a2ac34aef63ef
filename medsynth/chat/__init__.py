"""Baize-style self-chat: medical dialogues written by one LLM playing both the user and the assistant.

`topics` decides what each dialogue is about (seed questions, or LLM-proposed topics for a specialty × setting
grid), `transcript` holds the turn template and the cleaner, `build` runs the resumable slot loop on the run
store, `export` writes data.jsonl / HF `messages` / card / stats, `cli` is `python -m medsynth build chat`.
"""

from medsynth.chat.transcript import CleanResult, Turn, clean_transcript, clean_turns

__all__ = ["CleanResult", "Turn", "clean_transcript", "clean_turns"]
