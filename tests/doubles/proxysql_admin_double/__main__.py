"""python3 -m proxysql_admin_double --listen 0.0.0.0:6032 --datadir /var/lib/proxysql
   (--credentials admin:admin | --credentials-file FILE) [--seed seed.json]

TEST DOUBLE of ProxySQL's admin interface only: it never proxies MySQL traffic.
"""

import argparse
import asyncio
import json
import logging
import signal
import sys

from . import BANNER_VERSION, VERSION_COMMENT
from .server import build_server
from .store import AdminStore

log = logging.getLogger("proxysql_admin_double")


def parse_listen(value):
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"--listen needs HOST:PORT, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def read_credentials_file(path):
    with open(path, encoding="utf-8") as fh:
        lines = [ln.strip() for ln in fh if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines or ":" not in lines[0]:
        raise SystemExit(f"{path}: expected a line user:password[;user2:password2]")
    return lines[0]


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="python3 -m proxysql_admin_double",
        description="TEST DOUBLE of ProxySQL 2.x's admin interface (no traffic proxying).",
    )
    p.add_argument("--listen", type=parse_listen, default=("0.0.0.0", 6032),
                   help="HOST:PORT of the admin interface (default 0.0.0.0:6032)")
    p.add_argument("--datadir", required=True, help="holds proxysql.db and the TLS files")
    creds = p.add_mutually_exclusive_group()
    creds.add_argument("--credentials", help="initial admin-admin_credentials, user:pass[;...]")
    creds.add_argument("--credentials-file",
                       help="file whose first line is the initial admin-admin_credentials")
    p.add_argument("--seed", help="JSON with initial variables / mysql_servers / mysql_users /"
                                  " mysql_replication_hostgroups (used only without proxysql.db)")
    p.add_argument("--no-tls-autogen", action="store_true",
                   help="do not generate the TLS files at start when none exist")
    p.add_argument("--allow-remote-admin", action="store_true",
                   help="let the user 'admin' log in from non-loopback addresses")
    p.add_argument("--verbose", action="store_true", help="log every statement")
    return p.parse_args(argv)


async def serve(store, host, port, allow_remote_admin):
    server = build_server(store, BANNER_VERSION, VERSION_COMMENT, allow_remote_admin)
    await server.start_server(host=host, port=port)
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(
            sig, lambda: stop.done() or stop.set_result(None))
    print(f"proxysql_admin_double (TEST DOUBLE of ProxySQL admin): listening on {host}:{port}",
          flush=True)
    await stop
    server.close()
    await server.wait_closed()


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s proxysql_admin_double %(levelname)s %(message)s")
    for noisy in ("mysql_mimic", "mysql_mimic.connection"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    credentials = args.credentials
    if args.credentials_file:
        credentials = read_credentials_file(args.credentials_file)
    seed = None
    if args.seed:
        with open(args.seed, encoding="utf-8") as fh:
            seed = json.load(fh)
    try:
        store = AdminStore(args.datadir, seed=seed, credentials=credentials,
                           server_version=BANNER_VERSION, tls_autogen=not args.no_tls_autogen)
    except ValueError as exc:
        raise SystemExit(f"proxysql_admin_double: {exc}") from None
    host, port = args.listen
    try:
        asyncio.run(serve(store, host, port, args.allow_remote_admin))
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
