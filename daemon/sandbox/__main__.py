"""``python -m daemon.sandbox crm|helpdesk --port P --db FILE --token T``: serve one system.

Prints one line once listening; stops on SIGINT/SIGTERM. A port that cannot be bound or a
database that cannot be used is a one-line error and exit code 2.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence

from daemon.sandbox.crm import DEFAULT_TOKEN, Crm
from daemon.sandbox.errors import SandboxError
from daemon.sandbox.helpdesk import DEFAULT_API_KEY, DEFAULT_RATE_LIMIT, Helpdesk
from daemon.sandbox.ratelimit import RateLimit
from daemon.sandbox.server import LOOPBACK, serve
from daemon.sandbox.system import SimulatedSystem
from daemon.sandbox.webhooks import WebhookTarget

PROG = "python -m daemon.sandbox"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line, validated."""
    parser = argparse.ArgumentParser(prog=PROG, description="Serve a simulated SaaS system.")
    systems = parser.add_subparsers(dest="system", required=True, metavar="crm|helpdesk")
    crm = systems.add_parser("crm", help="CRM-like API: contacts and companies")
    helpdesk = systems.add_parser("helpdesk", help="helpdesk-like API: users and tickets")
    for sub, port in ((crm, 8101), (helpdesk, 8102)):
        sub.add_argument("--host", default=LOOPBACK, help="address to bind (default %(default)s)")
        sub.add_argument("--port", type=int, default=port, help="port (default %(default)s)")
        sub.add_argument("--db", default=":memory:", help="SQLite file (default: in memory)")
        sub.add_argument("--no-auth", action="store_true", help="accept requests without creds")
        sub.add_argument("--seed", type=int, help="seed for the fault injector")
        sub.add_argument("--rate-limit", type=float, metavar="PER_SECOND", help="requests/s")
        sub.add_argument("--burst", type=int, help="bucket size (default: one second's worth)")
    crm.add_argument("--token", default=DEFAULT_TOKEN, help="bearer token (default: %(default)s)")
    crm.add_argument("--webhook-url", help="where to POST change notifications")
    crm.add_argument("--webhook-secret", help="HMAC secret for webhook signatures")
    helpdesk.add_argument(
        "--token", "--api-key", dest="token", default=DEFAULT_API_KEY,
        help="API key expected in the X-API-Key header (default: %(default)s)",
    )  # fmt: skip
    helpdesk.add_argument("--basic-user", help="user accepted with basic auth")
    helpdesk.add_argument("--basic-password", help="password accepted with basic auth")
    helpdesk.add_argument("--no-rate-limit", action="store_true", help="turn the limit off")
    args = parser.parse_args(argv)
    if args.system == "crm" and bool(args.webhook_url) != bool(args.webhook_secret):
        parser.error("--webhook-url and --webhook-secret go together")
    if args.system == "helpdesk" and bool(args.basic_user) != bool(args.basic_password):
        parser.error("--basic-user and --basic-password go together")
    if not 0 <= args.port <= 65535:
        parser.error("--port must be from 0 to 65535")
    if args.rate_limit is not None and args.rate_limit <= 0:
        parser.error("--rate-limit must be > 0")
    if args.burst is not None and args.burst < 1:
        parser.error("--burst must be >= 1")
    return args


def build_system(args: argparse.Namespace) -> SimulatedSystem:
    """The system the command line asks for."""
    limit = RateLimit(args.rate_limit, args.burst) if args.rate_limit is not None else None
    if args.system == "crm":
        webhook = None
        if args.webhook_url:
            webhook = WebhookTarget(args.webhook_url, args.webhook_secret)
        token = None if args.no_auth else args.token
        return Crm(db=args.db, token=token, webhook=webhook, rate_limit=limit, seed=args.seed)
    if limit is None and not args.no_rate_limit:
        limit = RateLimit(DEFAULT_RATE_LIMIT.per_second, args.burst or DEFAULT_RATE_LIMIT.burst)
    basic = (args.basic_user, args.basic_password) if args.basic_user else None
    return Helpdesk(
        db=args.db,
        api_key=None if args.no_auth else args.token,
        basic=None if args.no_auth else basic,
        rate_limit=None if args.no_rate_limit else limit,
        seed=args.seed,
    )


async def run(args: argparse.Namespace) -> None:
    """Serve until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with serve(build_system(args), host=args.host, port=args.port) as running:
        print(f"{args.system} sandbox listening on {running.url} (db: {args.db})", flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = parse_args(argv)
    try:
        asyncio.run(run(args))
    except SandboxError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
