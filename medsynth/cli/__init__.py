"""Command line: argument parsing only. Each command turns options into config objects and calls the library.

Nothing outside `medsynth.cli` imports it (a test walks the imports to keep it so).
"""
