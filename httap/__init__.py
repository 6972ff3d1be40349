"""httap: a single-threaded HTTaP server that lets a browser drive hardware.

The names an application uses: `from httap import Pending, Response, HTTPError`.
"""

from httap.http import FileBody, HTTPError, Request, Response
from httap.reply import Pending
from httap.version import __version__

__all__ = ["FileBody", "HTTPError", "Pending", "Request", "Response", "__version__"]
