"""The version of httap, alone in a module of its own: http.py (the Server header) needs
it, and the package's `__init__`, which re-exports http.py's names, cannot be imported
by http.py without an import cycle."""

__version__ = "0.1.0"
