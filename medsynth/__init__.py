"""medsynth: synthetic medical NER / RE datasets written by a local LLM, checked, and used to train small models.

Data flows task spec → plan → prompt → LLM → parse → align → filter → store → export → train → evaluate;
each step is one module named for it.
"""

__version__ = "0.1.0"
