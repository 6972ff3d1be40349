"""TLS for `https://` listeners: the server's context, and a socket wrapper the
connection can drive like a plain non-blocking socket.

Rules of this file:
- Imported only when an `https://` address is configured: the `ssl` module costs
  memory that a plain-HTTP server on a small board does not need to pay.
- TLS 1.2 is the floor; renegotiation is off (it would let a client make the server
  read while it wants to write, and it is a known DoS lever); ALPN offers http/1.1.
- `Stream` turns "the TLS layer wants more bytes" into BlockingIOError, so the
  connection's read and write paths are the same for both kinds of socket. The
  handshake itself is a state of the connection (see connection.py); `Stream.handshake`
  only says which readiness it waits for.
"""

from __future__ import annotations

import os
import socket
import ssl

from httap.config import TlsConfig
from httap.loop import READ, WRITE

HANDSHAKE_RECORD = 0x16  # the first byte of a TLS connection: a handshake record
RECORD = 16384  # the most plaintext one TLS record carries
FILE_READ = 4 * RECORD  # bytes of a file read for one send
_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


class TlsSetupError(Exception):
    """The certificate or key cannot be used: one line for the user."""


class _Encrypted(Exception):
    """Raised by the password callback: the server never asks for a passphrase."""


def _no_passphrase() -> str:
    raise _Encrypted


def context(settings: TlsConfig) -> ssl.SSLContext:
    """The server's context, from the certificate chain and key files."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = _VERSIONS[settings.minimum]
    ctx.options |= ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_COMPRESSION
    ctx.set_alpn_protocols(["http/1.1"])
    try:
        ctx.load_cert_chain(settings.certificate, settings.key, password=_no_passphrase)
    except _Encrypted:
        raise TlsSetupError(
            f"the key {settings.key} is protected by a passphrase; httap starts unattended,"
            " so give it an unencrypted key readable only by the server's user"
        ) from None
    except ssl.SSLError as err:
        reason = err.reason or str(err)
        if reason == "KEY_VALUES_MISMATCH":
            why = f"the key {settings.key} does not belong to the certificate"
        else:
            why = f"{settings.certificate} and {settings.key} are not a PEM certificate and key"
        raise TlsSetupError(f"{why} ({reason})") from None
    except OSError as err:
        raise TlsSetupError(f"cannot read the certificate or key: {err.strerror}") from None
    return ctx


class Secure:
    """What an https:// listener hands its connections: the context, and the two steps
    that come before HTTP on them."""

    __slots__ = ("context",)

    def __init__(self, settings: TlsConfig) -> None:
        self.context = context(settings)

    @staticmethod
    def sniff(sock: socket.socket) -> str:
        """Peek at the first byte: "tls" for a handshake, "plain" for anything else
        (plain HTTP sent to an https port), "gone" at a close, "wait" before a byte."""
        try:
            first = sock.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return "wait"
        except OSError:
            return "gone"
        if not first:
            return "gone"
        return "tls" if first[0] == HANDSHAKE_RECORD else "plain"

    def wrap(self, sock: socket.socket) -> Stream:
        return Stream(self.context, sock)


class Stream:
    """An SSLSocket that fails like a plain non-blocking socket when TLS must wait."""

    __slots__ = ("_sock",)

    def __init__(self, ctx: ssl.SSLContext, sock: socket.socket) -> None:
        self._sock = ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)

    def fileno(self) -> int:
        return self._sock.fileno()

    def handshake(self) -> int:
        """Advance the handshake: 0 when done, else the readiness it waits for.

        Raises OSError (ssl.SSLError is one) when the client fails it."""
        try:
            self._sock.do_handshake()
        except ssl.SSLWantReadError:
            return READ
        except ssl.SSLWantWriteError:
            return WRITE
        return 0

    def recv(self, size: int) -> bytes:
        """Decrypted bytes; b"" at the client's close. Reads every record already
        decrypted, so that nothing waits inside the TLS layer unseen by the poll."""
        sock = self._sock
        try:
            data = sock.recv(size)
            while data and sock.pending() and len(data) < size:
                data += sock.recv(size - len(data))
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise BlockingIOError from None
        return data

    def send(self, data: bytes) -> int:
        """Send record by record: OpenSSL reports a record that only partly left as "want
        write", so a bigger write would hide the progress a slow reader makes (and the
        connection would call it idle). A retry passes the same record again, as
        OpenSSL asks of a repeated write."""
        view = memoryview(data)
        sent = 0
        try:
            while sent < len(view):
                sent += self._sock.send(view[sent : sent + RECORD])
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            if not sent:
                raise BlockingIOError from None
        return sent

    def send_file(self, fd: int, offset: int, count: int) -> int:
        """sendfile() for TLS: the bytes are read and encrypted here, a few records at a
        time; a retry re-reads the same bytes."""
        return self.send(os.pread(fd, min(count, FILE_READ), offset))

    def shutdown(self, how: int) -> None:
        """Send the TLS close alert, as far as the socket takes it, then shut the TCP side."""
        try:
            self._sock.unwrap()
        except (ssl.SSLError, OSError, ValueError):
            pass
        self._sock.shutdown(how)

    def close(self) -> None:
        self._sock.close()
