"""Check that the PostgreSQL and Redis the test suite needs are reachable; say exactly what to start if not.

Used by ``make test`` (and so by .ci/run) and ``make up``. Reads DATABASE_URL and REDIS_URL with the suite's
defaults. ``--create-database`` also creates the database DATABASE_URL names when it is missing (``make up``).
Exit status 0 when both answer, 1 otherwise.
"""

from __future__ import annotations

import os
import sys
from urllib.parse import unquote, urlsplit

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/aggpay"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def check_postgres(url: str) -> str | None:
    """None when we can log in; otherwise why not. Connects to the maintenance database ``postgres``,
    because pytest-django creates ``test_<name>`` from there and ``<name>`` itself need not exist."""
    import psycopg

    parts = urlsplit(url)
    try:
        with psycopg.connect(
            host=parts.hostname or "127.0.0.1", port=parts.port or 5432, dbname="postgres",
            user=unquote(parts.username or "postgres"), password=unquote(parts.password or "") or None,
            connect_timeout=3,
        ) as conn:
            conn.execute("SELECT 1")
            can_create = conn.execute(
                "SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user"
            ).fetchone()[0]
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if not can_create:
        return f"role {parts.username!r} may not create databases (the tests create test_<name>)"
    return None


def create_database(url: str) -> None:
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    name = unquote(parts.path.lstrip("/")) or "postgres"
    with psycopg.connect(
        host=parts.hostname or "127.0.0.1", port=parts.port or 5432, dbname="postgres",
        user=unquote(parts.username or "postgres"), password=unquote(parts.password or "") or None,
        connect_timeout=3, autocommit=True,
    ) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            print(f"created database {name}")


def check_redis(url: str) -> str | None:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3).ping()
    except redis.RedisError as exc:
        return str(exc) or type(exc).__name__
    return None


def main() -> int:
    database_url = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    redis_url = os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
    db = urlsplit(database_url)
    failures = []
    problem = check_postgres(database_url)
    if problem:
        failures.append(
            f"PostgreSQL is not usable at {db.hostname}:{db.port or 5432} as {db.username or 'postgres'} "
            f"(DATABASE_URL={database_url}):\n    {problem}\n"
            "  Start it, for example:\n"
            "    sudo pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start   # Debian/Ubuntu\n"
            "    docker run -d --name aggpay-postgres -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust postgres:15\n"
            "  or point DATABASE_URL at a server where that role may create databases."
        )
    problem = check_redis(redis_url)
    if problem:
        failures.append(
            f"Redis is not reachable (REDIS_URL={redis_url}):\n    {problem}\n"
            "  Start it, for example:\n"
            '    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no\n'
            "    docker run -d --name aggpay-redis -p 6379:6379 redis:7\n"
            "  or point REDIS_URL at a running server."
        )
    if failures:
        print("make test needs PostgreSQL and Redis.\n\n" + "\n\n".join(failures), file=sys.stderr)
        return 1
    if "--create-database" in sys.argv[1:]:
        create_database(database_url)
    print(f"services ok: PostgreSQL at {db.hostname}:{db.port or 5432}, Redis at {redis_url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
