"""``matrixcalculus serve [--port 8000] [--host 127.0.0.1] [--open]``: the page on this computer.

>>> main(["--port", "8000"])   # doctest: +SKIP
matrixcalculus: serving the page at http://127.0.0.1:8000/ (Ctrl-C stops it)
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
import threading
import webbrowser
from collections.abc import Sequence

__all__ = ["build_parser", "is_loopback", "main"]

EXTRA = 'the web page needs the "web" extra: pip install "matrixcalculus[web]"'


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="matrixcalculus serve",
        description="Serve the matrixcalculus page (and its JSON API, docs/web.md) on this computer.",
    )
    p.add_argument("--port", type=int, default=8000, help="the port (8000)")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="the address to listen on (127.0.0.1: this computer only; any other address lets others "
        "on the network use the server, with a warning)",
    )
    p.add_argument("--open", action="store_true", help="open the page in the web browser")
    p.add_argument("--workers", type=int, default=None, help="worker processes computing answers (one per core, 2-4)")
    p.add_argument(
        "--time-limit", type=float, default=10.0, help="seconds one request may compute before it is stopped (10)"
    )
    return p


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this computer only: ``127.0.0.1``, ``::1``, ``localhost``.

    >>> is_loopback("127.0.0.1"), is_loopback("0.0.0.0")
    (True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def main(argv: Sequence[str]) -> int:
    """Run the server until interrupted; the exit status (2 for a usage error or a missing extra)."""
    args = build_parser().parse_args(list(argv))
    if not 0 <= args.port <= 65535:
        print(f"matrixcalculus: error: --port is from 0 to 65535, not {args.port}", file=sys.stderr)
        return 2
    if args.time_limit <= 0 or (args.workers is not None and args.workers < 1):
        print("matrixcalculus: error: --time-limit and --workers must be positive", file=sys.stderr)
        return 2
    try:
        import uvicorn

        from matrixcalculus.web.app import LOOPBACK_HOSTS, create_app
    except ImportError:
        print(f"matrixcalculus: error: {EXTRA}", file=sys.stderr)
        return 2
    loopback = is_loopback(args.host)
    if not loopback:
        print(
            f"matrixcalculus: warning: listening on {args.host}, not 127.0.0.1: anyone who can reach this "
            "computer on the network can use the server (each request is bounded, but it has no login)",
            file=sys.stderr,
        )
    host_in_url = f"[{args.host}]" if ":" in args.host and not args.host.startswith("[") else args.host
    url = f"http://{host_in_url}:{args.port}/"
    app = create_app(
        workers=args.workers,
        time_limit=args.time_limit,
        allowed_hosts=[*LOOPBACK_HOSTS, args.host] if loopback else None,
    )
    print(f"matrixcalculus: serving the page at {url} (Ctrl-C stops it)", file=sys.stderr, flush=True)
    if args.open:
        # After a moment, so that the server is listening when the browser asks.
        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    except KeyboardInterrupt:
        return 130
    return 0
