"""``authq``: up, api, keys create/list/revoke, secrets rotate, catalog check."""

from __future__ import annotations

import argparse
import gc
import os
import secrets
import sys
from pathlib import Path

import redis
from pydantic import SecretStr, ValidationError

from tasks.errors import AuthqError, ConfigError
from tasks.settings import DEFAULT_HOST, DEFAULT_PORT, Settings


def _settings(**overrides: object) -> Settings:
    try:
        settings = Settings()
    except ValidationError as exc:
        problems = "; ".join(f"AUTHQ_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"Invalid settings: {problems}") from None
    given = {k: v for k, v in overrides.items() if v is not None}
    return settings.model_copy(update=given) if given else settings


def _logging(settings: Settings) -> None:
    from tasks.telemetry.logs import configure

    configure(settings.log_level)


def _redis_for_admin(settings: Settings) -> redis.Redis:
    from authq.datadir import DataDir

    url = settings.redis_url or DataDir(settings.data_dir).running_redis_url()
    if not url:
        raise ConfigError("No Redis to talk to: set AUTHQ_REDIS_URL, or start `authq up` (same --data-dir) first.")
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.RedisError:
        raise ConfigError("Redis does not answer. Is `authq up` running (same --data-dir)? "
                          "Otherwise check AUTHQ_REDIS_URL.") from None
    return client


async def _freeze_heap(_: object) -> None:
    """Start-up objects (modules, the catalog, pydantic schemas: ~95k) are kept for the life of
    the process: frozen, the collector stops re-scanning them in every full collection (measured
    in bench/: ~3.5% of the API's time at load, in ~40 ms pauses)."""
    gc.collect()
    gc.freeze()


def cmd_api(args: argparse.Namespace) -> int:
    from aiohttp import web

    from api.app import create_app
    from authq.ports import bind_error
    from tasks.security.key_check import check_at_start_url
    from tasks.security.sealing import SecretBox
    from worker.queues import make_job_queue

    settings = _settings(host=args.host, port=args.port)
    _logging(settings)
    # The key check first, before any connection, thread or event loop exists: a wrong key ends
    # the process here, with nothing to wind down (ConfigError: one line, exit 2).
    check_at_start_url(settings.require_redis_url(),
                       SecretBox(settings.secret_key.get_secret_value() if settings.secret_key else None))
    app = create_app(settings, make_job_queue(settings), key_checked=True)
    app.on_startup.append(_freeze_heap)
    try:
        web.run_app(app, host=settings.host, port=settings.port, access_log=None, reuse_port=args.reuse_port or None,
                    print=lambda _: print(f"authq api listening on http://{settings.host}:{settings.port}", flush=True))
    except OSError as exc:   # the port was taken (or the address is not this machine's): one line, no traceback
        error = bind_error(exc, settings.host, settings.port)
        if error is None:
            raise
        raise error from None
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from authq.banner import ready_lines
    from authq.datadir import DataDir
    from authq.demo_link import demo_connect_url
    from authq.ports import check_can_listen
    from authq.redis_server import start_redis
    from authq.supervisor import Child, OwnWorkers, Supervisor, api_argv, die_with_parent, say, worker_argv, worker_name
    from tasks.model.api_keys import SCOPES
    from tasks.security.key_check import check_at_start
    from tasks.security.sealing import SecretBox
    from tasks.storage.api_keys import count_keys, create_key

    settings = _settings(host=args.host, port=args.port, data_dir=args.data_dir, demo=args.demo or None)
    if args.workers < 1:
        raise ConfigError("--workers must be at least 1.")
    if args.api_processes < 1:
        raise ConfigError("--api-processes must be at least 1.")
    data = DataDir(settings.data_dir)
    data.prepare()
    lock = data.lock()
    try:
        check_can_listen(settings.host, settings.port)   # before anything starts: nothing to stop
    except ConfigError:
        lock.close()
        raise
    env = dict(os.environ)
    if settings.secret_key is None:
        settings = settings.model_copy(update={"secret_key": SecretStr(data.secret_key())})
    # The API reports this run's instance id from /readyz: only our own API's answer means ready.
    instance = secrets.token_hex(16)
    env.update({"AUTHQ_SECRET_KEY": settings.secret_key.get_secret_value(),  # type: ignore[union-attr]
                "AUTHQ_HOST": settings.host, "AUTHQ_PORT": str(settings.port),
                "AUTHQ_DATA_DIR": str(data.path), "AUTHQ_INSTANCE_ID": instance,
                # One answer for every process: the API serves the demo, the workers know its catalog.
                "AUTHQ_DEMO": "true" if settings.demo else "false"})
    server = None
    supervisor = None
    workers = None
    try:
        if settings.redis_url is None:
            say(f"authq: starting embedded Redis (data in {data.redis_dir})…")
            server = start_redis(data.redis_dir, data.redis_password(), preexec_fn=die_with_parent)
            data.write_redis_url(server.url)
            env["AUTHQ_REDIS_URL"] = server.url
            say(f"authq: Redis ready at {server.display_url}")
            client = server.client()
        else:
            client = redis.Redis.from_url(settings.redis_url)
        # A key that does not open the stored secrets stops `up` here, before any child starts.
        check_at_start(client, SecretBox(settings.secret_key.get_secret_value()))  # type: ignore[union-attr]
        if not settings.static_api_keys() and count_keys(client) == 0:
            record, raw = create_key(client, "default", SCOPES)   # a newcomer's key: it may try everything
            key_file = data.path / "api-key"
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(raw + "\n")
            say(f"authq: made an API key for tenant 'default' ({record.id}); it is in {key_file}")
        client.close()
        # One API process is "api" (its log api.log); several share the port (SO_REUSEPORT).
        apis = ["api"] if args.api_processes == 1 else [f"api{i}" for i in range(1, args.api_processes + 1)]
        children = [Child(name, api_argv(reuse_port=len(apis) > 1), data.log(name), env, essential=True)
                    for name in apis]
        children += [Child(f"worker{i}", worker_argv(i, settings.worker_concurrency), data.log(f"worker{i}"), env)
                     for i in range(1, args.workers + 1)]
        base = f"http://{settings.host}:{settings.port}"
        workers = OwnWorkers(settings.redis_url or env["AUTHQ_REDIS_URL"],
                             [worker_name(i) for i in range(1, args.workers + 1)])
        supervisor = Supervisor(children, f"{base}/readyz", instance, workers.seen)
        supervisor.install_signals()
        api_text = "the API" if len(apis) == 1 else f"{len(apis)} API processes"
        say(f"authq: starting {api_text} and {args.workers} worker{'s' if args.workers > 1 else ''} "
            f"(logs in {data.path / 'logs'})…")
        supervisor.start_all()
        supervisor.wait_ready()
        if not supervisor.stopping.is_set():
            link = demo_connect_url(base, data.path / "api-key") if settings.demo else None
            say("\n".join(ready_lines(base, data.path / "api-key", settings.demo, settings.effective_public_url,
                                       link)))
        return supervisor.watch()
    finally:
        if supervisor is not None:
            supervisor.stop_all()
        if workers is not None:
            workers.close()
        if server is not None:
            server.stop()
            data.redis_url_file.unlink(missing_ok=True)
        lock.close()
        say("authq: stopped.")


def cmd_keys_create(args: argparse.Namespace) -> int:
    from tasks.model.api_keys import parse_scopes
    from tasks.storage.api_keys import create_key

    scopes = parse_scopes(args.scopes, ",")   # (a ValueError is the CLI's error line, exit 2)
    settings = _settings(data_dir=args.data_dir)
    record, raw = create_key(_redis_for_admin(settings), args.tenant, scopes)
    print(f"key id:  {record.id}\ntenant:  {record.tenant}\nscopes:  {','.join(record.scopes)}\napi key: {raw}\n"
          "(shown once: authq keeps only its hash)")
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    from tasks.model.records import iso
    from tasks.storage.api_keys import list_keys

    settings = _settings(data_dir=args.data_dir)
    static = settings.static_api_keys().values()
    listed = list_keys(_redis_for_admin(settings), static, args.tenant)
    rows = [("ID", "TENANT", "SCOPES", "CREATED", "LAST USED")]
    rows += [(k.key.id, k.key.tenant, ",".join(k.key.scopes),
              "AUTHQ_API_KEYS" if k.key.static else iso(k.key.created_at) or "-",
              iso(k.last_used_at) or "never") for k in listed]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    from tasks.storage.api_keys import revoke_key

    settings = _settings(data_dir=args.data_dir)
    if any(k.id == args.key_id for k in settings.static_api_keys().values()):
        raise ConfigError(f"{args.key_id} is a key of AUTHQ_API_KEYS: remove it there and restart the API.")
    record = revoke_key(_redis_for_admin(settings), args.key_id)
    print(f"revoked {record.id} (tenant {record.tenant})")
    return 0


def cmd_secrets_rotate(args: argparse.Namespace) -> int:
    from authq.datadir import DataDir
    from tasks.security.key_check import ensure_key_check, verify_key_check
    from tasks.security.rotation import RotationReport, rotate_secrets
    from tasks.security.sealing import SecretBox
    from tasks.storage.schema import KEY_CHECK

    if args.progress_every < 1:
        raise ConfigError("--progress-every must be at least 1.")
    settings = _settings(data_dir=args.data_dir)
    # The keys of `authq api`/workers, or else those of an `authq up` on this data dir.
    keys = (settings.secret_key.get_secret_value() if settings.secret_key
            else DataDir(settings.data_dir).existing_secret_key())
    box = SecretBox(keys)
    count = len([k for k in (keys or "").split(",") if k.strip()])
    client = _redis_for_admin(settings)
    check = client.get(KEY_CHECK)
    if check is not None:
        try:
            verify_key_check(box, check)
        except ConfigError:
            raise ConfigError(
                f"None of the {count} key(s) in AUTHQ_SECRET_KEY opens the secrets stored in this Redis "
                f"({KEY_CHECK} does not open). Give the new key first and the key in use so far after it, "
                "comma separated (AUTHQ_SECRET_KEY=NEW,OLD), then run `authq secrets rotate` again.") from None
    if count == 1:
        print("authq: AUTHQ_SECRET_KEY holds one key: checking that everything is sealed under it.", flush=True)
    print(f"authq: re-sealing every stored secret under the newest of {count} key(s)…", flush=True)

    def progress(report: RotationReport) -> None:
        print(f"authq:   … {report.records_scanned} records checked, {report.fields_rotated} secrets re-sealed, "
              f"{report.fields_failed} that no key opens", flush=True)

    report = rotate_secrets(client, box, progress, progress_every=args.progress_every)
    print(f"authq: {report.summary()}.", flush=True)
    code = 0
    if report.fields_failed:
        code = 1
        print(f"authq: error: {report.fields_failed} stored secret(s) in {report.records_failed} record(s) open with "
              f"none of the {count} key(s) in AUTHQ_SECRET_KEY; they were left exactly as they are:", file=sys.stderr)
        for failure in report.failures[:10]:
            print(f"authq:   {failure.describe()}", file=sys.stderr)
        if report.fields_failed > 10:
            print(f"authq:   … and {report.fields_failed - 10} more", file=sys.stderr)
        oldest = report.oldest_failure
        since = f" (the oldest of them was sealed {oldest.isoformat(timespec='seconds')})" if oldest else ""
        print("authq: They were sealed with a key that is not in AUTHQ_SECRET_KEY, most likely an older key already "
              f"removed from it{since}. Add that key back at the end of AUTHQ_SECRET_KEY (NEW,OLD,OLDER), restart "
              "the API and workers, and run `authq secrets rotate` again. If that key is lost, so are these "
              "secrets: re-authorise the connectors concerned, upload their certificates again.", file=sys.stderr)
    if report.conflicts:
        code = 1
        print(f"authq: error: {len(report.conflicts)} record(s) kept changing while being re-sealed and were not "
              f"rotated (first: {report.conflicts[0]}); run `authq secrets rotate` again.", file=sys.stderr)
    if code == 0:
        ensure_key_check(client, box)   # made now if no process made it yet
        print("authq: done: every stored secret opens with the newest key alone. Once every API and worker "
              "runs with the new AUTHQ_SECRET_KEY, the older key(s) can be removed from it.", flush=True)
    client.close()
    return code


def cmd_catalog_check(args: argparse.Namespace) -> int:
    from tasks.model.catalog import load_catalog
    from tasks.model.catalog_check import check_file

    problems = check_file(Path(args.file))
    if problems:
        noun = "problem" if len(problems) == 1 else "problems"
        raise ConfigError(f"catalog {args.file}: {len(problems)} {noun}:\n" + "\n".join(f"  {p}" for p in problems))
    catalog = load_catalog(Path(args.file))
    print(f"{args.file}: OK ({len(catalog.implementations)} implementations, "
          f"{len(catalog.platform_apps)} platform apps)")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="authq", description="Queued connector authorisation.")
    sub = top.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run Redis (embedded), the API and workers on this machine")
    up.add_argument("--host", default=None, help=f"listen address (default {DEFAULT_HOST})")
    up.add_argument("--port", type=int, default=None, help=f"listen port (default {DEFAULT_PORT})")
    up.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    up.add_argument("--api-processes", type=int, default=1,
                    help="API processes sharing the port (default 1; the kernel spreads connections over them)")
    up.add_argument("--data-dir", type=Path, default=None, help="where to keep data (default ./.authq)")
    up.add_argument("--demo", action="store_true",
                    help="also serve the demo provider under /demo/ and its catalog entries (AUTHQ_DEMO)")
    up.set_defaults(run=cmd_up)
    api = sub.add_parser("api", help="run the HTTP API only (needs AUTHQ_REDIS_URL)")
    api.add_argument("--host", default=None)
    api.add_argument("--port", type=int, default=None)
    api.add_argument("--reuse-port", action="store_true",
                     help="listen with SO_REUSEPORT, beside other API processes on the same port")
    api.set_defaults(run=cmd_api)
    keys = sub.add_parser("keys", help="API keys").add_subparsers(dest="keys_command", required=True)
    create = keys.add_parser("create", help="make an API key for a tenant")
    create.add_argument("--tenant", required=True)
    create.add_argument("--scopes", default="manage,proxy",
                        help="comma separated, of manage, proxy, credentials (default manage,proxy)")
    create.add_argument("--data-dir", type=Path, default=None)
    create.set_defaults(run=cmd_keys_create)
    listing = keys.add_parser("list", help="list API keys (never the keys themselves)")
    listing.add_argument("--tenant", default=None, help="only this tenant's")
    listing.add_argument("--data-dir", type=Path, default=None)
    listing.set_defaults(run=cmd_keys_list)
    revoke = keys.add_parser("revoke", help="revoke an API key by its id")
    revoke.add_argument("key_id")
    revoke.add_argument("--data-dir", type=Path, default=None)
    revoke.set_defaults(run=cmd_keys_revoke)
    secrets_cmd = sub.add_parser("secrets", help="secrets at rest").add_subparsers(dest="secrets_command",
                                                                                  required=True)
    rotate = secrets_cmd.add_parser("rotate", help="re-seal every stored secret under the newest AUTHQ_SECRET_KEY key")
    rotate.add_argument("--data-dir", type=Path, default=None)
    rotate.add_argument("--progress-every", type=int, default=1000, metavar="N",
                        help="print progress every N records (default 1000)")
    rotate.set_defaults(run=cmd_secrets_rotate)
    catalog = sub.add_parser("catalog", help="the catalog").add_subparsers(dest="catalog_command", required=True)
    check = catalog.add_parser("check", help="validate a catalog file")
    check.add_argument("file")
    check.set_defaults(run=cmd_catalog_check)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.run(args))
    except (AuthqError, ValueError) as exc:
        message = getattr(exc, "message", None) or str(exc)
        print(f"authq: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
