"""httap: a single-threaded HTTaP server that lets a browser drive hardware."""

__version__ = "0.1.0"
