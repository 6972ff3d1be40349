"""The `httap` command: `serve` runs the server, `check` validates a configuration,
`passwd` makes a password hash for `auth.users`, `init` writes a starter configuration."""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Optional

from httap import __version__, config, extras, privileges
from httap.config import StartupError

# The end of `httap --help` and `httap serve --help`: one command to try, and where the
# configuration comes from (config.load's order).
EPILOG = """example (the browser console on the simulated board; no file needed):
  httap serve --gpio sim --listen http://127.0.0.1:8080

configuration: the file --config names, else ./web.json5 when there is one, else the
defaults; HTTAP_* environment variables override the file, and flags override both."""


class _Help(argparse.RawDescriptionHelpFormatter):
    """argparse's layout (descriptions and epilogs as written), told the width.

    Left to find the terminal's width itself, argparse imports shutil, and shutil
    imports zlib, bz2 and lzma: 0.7 MiB of a serving process's memory, for a help text
    it never prints. The width is found as shutil.get_terminal_size() finds it
    ($COLUMNS, else the terminal on stdout, else 80), less 2, as argparse takes it.
    """

    def __init__(self, prog: str) -> None:
        try:
            columns = int(os.environ["COLUMNS"])
        except (KeyError, ValueError):
            try:
                columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
            except (AttributeError, ValueError, OSError):
                columns = 80
        super().__init__(prog, width=(columns if columns > 0 else 80) - 2)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="httap",
        description="A single-threaded HTTaP server: a browser drives hardware.",
        epilog=EPILOG,
        formatter_class=_Help,
    )
    parser.add_argument("--version", action="version", version=f"httap {__version__}")
    commands = parser.add_subparsers(
        dest="command",
        required=True,
        metavar="COMMAND",
        parser_class=functools.partial(argparse.ArgumentParser, formatter_class=_Help),
    )
    serve = commands.add_parser(
        "serve",
        help="run the server",
        description="Run the server until Ctrl-C or SIGTERM.",
        epilog=EPILOG,
    )
    check = commands.add_parser("check", help="validate a configuration, print effective values")
    passwd = commands.add_parser(
        "passwd",
        help="print a password hash for auth.users (asks twice; or reads one line from a pipe)",
    )
    passwd.add_argument("name", nargs="?", help="the user, to print the web.json5 entry")
    init = commands.add_parser(
        "init", help="write a starter web.json5 and static/index.html; never overwrites"
    )
    init.add_argument(
        "directory", nargs="?", default=".", metavar="DIR", help="where (default: here)"
    )
    passwd.add_argument(
        "--cost",
        type=int,
        default=14,
        choices=config.SCRYPT_COSTS,
        metavar="LN",
        help=f"log2 of scrypt's N, {config.SCRYPT_COSTS[0]} to {config.SCRYPT_COSTS[-1]}"
        " (default 14: 16 MiB, tens of ms per check)",
    )
    for sub in (serve, check):
        sub.add_argument(
            "--config", metavar="FILE", help="web.json5 (default: ./web.json5 if present)"
        )
    serve.add_argument(
        "--listen",
        metavar="URL",
        action="append",
        help="http://HOST:PORT or https://HOST:PORT to listen on; repeat for more"
        " (replaces the config's)",
    )
    serve.add_argument("--tls-certificate", metavar="FILE", help="PEM certificate chain (https)")
    serve.add_argument("--tls-key", metavar="FILE", help="PEM private key (https)")
    serve.add_argument("--documents", metavar="DIR", help="directory of the static files")
    serve.add_argument("--gpio", metavar="BACKEND", help="auto, sim, rpi or gpiod")
    serve.add_argument(
        "--app", metavar="FILE", help="Python file whose setup(server) registers actions"
    )
    serve.add_argument(
        "--trace",
        action="store_true",
        default=None,  # not given: the config decides
        help="log each request head and response head (log.trace)",
    )
    return parser


def _overrides(args: argparse.Namespace) -> dict:
    flags = {
        "listen": args.listen,
        "documents": args.documents,
        "gpio.backend": args.gpio,
        "app": args.app,
        "log.trace": args.trace,
        "tls.certificate": args.tls_certificate,
        "tls.key": args.tls_key,
    }
    return {key: value for key, value in flags.items() if value is not None}


def serve(args: argparse.Namespace) -> int:
    settings = config.load(args.config, overrides=_overrides(args))
    from httap.server import Server

    logging.basicConfig(
        level=settings.log.level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Looked up before anything is opened: a wrong name fails at once, with /etc in sight.
    identity = privileges.resolve(settings.user, settings.group, settings.chroot)
    server = Server(settings)
    # Before the start-up line: whoever waits for it may signal at once.
    for signum in (signal.SIGINT, signal.SIGTERM):
        server.loop.add_signal_handler(signum, server.stop)
    try:
        urls = server.listen()
        # Sockets bound and devices open: nothing more needs root, so give it up.
        privileges.drop(identity, settings.documents if settings.chroot else None)
        if settings.chroot:
            server.serve_documents_from("/")
        server.check_documents()  # as the user that serves them
    except (StartupError, privileges.PrivilegeError):
        server.close()  # release what Server() opened (the GPIO backend among others)
        raise
    documents = settings.documents
    if server.site is not None and server.site.current is not None:  # an app update's
        documents = f"{server.site.root} (PUT /?app; configured: {settings.documents})"
    print(
        f"httap {__version__} listening on {', '.join(urls)}"
        f" | documents {documents} | gpio {server.gpio.name}",
        flush=True,
    )
    server.serve_forever()
    print("httap stopped", flush=True)
    return 0


def check(args: argparse.Namespace) -> int:
    settings = config.load(args.config)
    from httap.persist import state_path
    from httap.server import tls_setup

    tls_setup(settings)  # the certificate and key are loaded as serve would
    values = config.to_dict(settings)
    # The values in effect where the schema's default is null: computed at start-up.
    values["gpio"]["state_file"] = state_path(settings)
    values["mqtt"]["client_id"] = config.mqtt_client_id(settings)
    print(json.dumps(values, indent=2))
    # A missing library serve needs is an error (serve would exit 1); one it starts
    # without (forms, where PUT still uploads) a warning: each a line of its own.
    refused, warned = extras.hardware_pwm(settings)
    refused = extras.errors(settings) + refused
    for line in refused:
        print(f"httap check: error: {line}", file=sys.stderr)
    for line in extras.warnings(settings) + warned:
        print(f"httap check: warning: {line}", file=sys.stderr)
    return 1 if refused else 0


class PasswordError(Exception):
    """The password cannot be used: one line for the user."""


def _read_password() -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    import getpass  # and termios: only for this command, not in a serving process

    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise PasswordError("the two passwords differ; nothing was written")
    return first


def passwd(args: argparse.Namespace) -> int:
    from httap.auth import hash_password

    password = _read_password()
    if not password:
        raise PasswordError("an empty password; nothing was written")
    hashed = hash_password(password, args.cost)
    print(hashed)
    if args.name:
        entry = json.dumps({"password": hashed, "role": "ROLE"})
        print(f"in web.json5, under auth.users: {json.dumps(args.name)}: {entry}", file=sys.stderr)
    return 0


def init(args: argparse.Namespace) -> int:
    from httap.init import InitError, write_starter  # only for this command

    try:
        written = write_starter(args.directory)
    except InitError as err:
        print(f"httap init: {err}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    where = "" if Path(args.directory).resolve() == Path.cwd() else f"cd {args.directory} && "
    print(f"next: {where}httap serve    (then open http://localhost:8080)")
    return 0


COMMANDS = {"serve": serve, "check": check, "passwd": passwd, "init": init}


def main(argv: Optional[list[str]] = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except config.ConfigError as err:
        print(f"httap: {err}", file=sys.stderr)
        return 2
    except PasswordError as err:
        print(f"httap passwd: {err}", file=sys.stderr)
        return 2
    except (StartupError, privileges.PrivilegeError) as err:
        print(f"httap: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
