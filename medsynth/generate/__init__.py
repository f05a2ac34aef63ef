"""Generate: plan → prompt → LLM → parse → align → filter (→ relate for RE), the slot loop (`build`) and annotate mode.

Everything here turns a task spec into checked examples in the run store; nothing here reads real corpora or trains.
"""
