"""`rs-guard clients ...`: the command line over the Python API.

Exit codes: 0 done (or nothing to do); 1 an error (every error is explained on stderr, never
with a traceback); 2 a usage error, or with `plan --detailed-exitcode`, a plan with changes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from ._apply import ApplyResult, apply
from ._load import load
from ._manage import forget, import_client
from ._model import ClientsFile
from ._plan import Plan, make_plan
from ._registrar import Registrar
from ._secrets import SecretsCommand, SecretsDir, SecretSink
from ._state import State
from .errors import ApplyError, ClientsError, InitialAccessTokenError

EXIT_ERROR = 1
EXIT_CHANGES = 2


def make_http_client() -> httpx.AsyncClient:
    """The HTTP client of a run (a seam for tests that inject faults)."""
    return httpx.AsyncClient(timeout=10.0, follow_redirects=False)


def add_parser(sub: Any) -> None:
    """Add the `clients` command to the subparsers `sub` of `rs-guard`."""
    parser = sub.add_parser(
        "clients",
        help="OAuth/OIDC clients as code (RFC 7591/7592): plan, apply, destroy",
        description="Make an authorization server's registered clients match a TOML file.",
    )
    commands = parser.add_subparsers(dest="clients_command", required=True, metavar="COMMAND")

    def command(name: str, help: str, run: Callable[[argparse.Namespace], int]) -> Any:
        cmd = commands.add_parser(name, help=help, description=help)
        cmd.add_argument("file", metavar="FILE", help="the clients file (TOML)")
        cmd.add_argument("--state", metavar="PATH", help="state file (default: from FILE)")
        cmd.set_defaults(func=run)
        return cmd

    def secrets(cmd: Any) -> None:
        where = cmd.add_mutually_exclusive_group()
        where.add_argument("--secrets-dir", metavar="DIR", help="one 0600 file DIR/NAME.json each")
        where.add_argument(
            "--secrets-command", metavar="CMD", help="run CMD per secret, secret on its stdin"
        )
        cmd.add_argument(
            "--initial-access-token-env",
            metavar="VAR",
            help="environment variable with the initial access token (overrides the file)",
        )
        cmd.add_argument("--json", action="store_true", help="print the plan and result as JSON")

    command("validate", "check the file offline (RFC 7591 / OIDC Registration rules)", _validate)
    plan = command("plan", "show what apply would do, field by field, with drift", _plan)
    plan.add_argument("--json", action="store_true", help="print the plan as JSON (for CI)")
    plan.add_argument(
        "--detailed-exitcode", action="store_true", help="exit 2 when the plan has changes"
    )
    secrets(command("apply", "register, update and delete clients to match the file", _apply))
    secrets(command("destroy", "delete every client the state holds for the file", _destroy))
    imp = command("import", "take an existing client under management", _import)
    imp.add_argument("name", metavar="NAME", help="the client's local name in FILE")
    imp.add_argument("client_id", metavar="CLIENT_ID")
    imp.add_argument(
        "--token-env",
        metavar="VAR",
        required=True,
        help="environment variable with its registration access token",
    )
    imp.add_argument("--registration-client-uri", metavar="URI")
    drop = command("forget", "drop a client from the state (the server is not touched)", _forget)
    drop.add_argument("name", metavar="NAME")


# ----- the commands -----------------------------------------------------------------------


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_ERROR


def _guarded(run: Callable[[], int]) -> int:
    try:
        return run()
    except ClientsError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return _fail("interrupted; the state matches what was done so far")


def _open(args: argparse.Namespace) -> tuple[ClientsFile, State]:
    spec = load(args.file)
    return spec, State.of(spec, args.state)


def _with_server(
    spec: ClientsFile,
    state: State,
    body: Callable[[Registrar], Awaitable[int]],
    *,
    token: str | None = None,
) -> int:
    async def run() -> int:
        async with make_http_client() as http:
            registrar = Registrar(spec.server, initial_access_token=token, http_client=http)
            return await body(registrar)

    with state.lock():
        return asyncio.run(run())


def _validate(args: argparse.Namespace) -> int:
    def run() -> int:
        spec = load(args.file)
        print(f"{spec.display_name}: valid ({len(spec.clients)} clients)")
        return 0

    return _guarded(run)


def _plan(args: argparse.Namespace) -> int:
    def run() -> int:
        spec, state = _open(args)

        async def body(server: Registrar) -> int:
            plan = await make_plan(spec, state, server)
            print(plan.to_json() if args.json else plan.render())
            return EXIT_CHANGES if args.detailed_exitcode and plan.has_changes else 0

        return _with_server(spec, state, body)

    return _guarded(run)


def _sink(args: argparse.Namespace) -> SecretSink | None:
    if args.secrets_dir:
        return SecretsDir(args.secrets_dir)
    if args.secrets_command:
        return SecretsCommand(args.secrets_command)
    return None


def _token(spec: ClientsFile, args: argparse.Namespace) -> tuple[str | None, str | None]:
    """The initial access token, and the variable it was to come from."""
    var = args.initial_access_token_env or spec.server.initial_access_token_env
    if var is None:
        return None, None
    return (os.environ.get(var) or None), var


def _perform(args: argparse.Namespace, *, destroy: bool) -> int:
    def run() -> int:
        spec, state = _open(args)
        sink = _sink(args)
        token, var = _token(spec, args)

        async def body(server: Registrar) -> int:
            plan = await make_plan(spec, state, server, destroy=destroy)
            if var is not None and token is None and plan.count("create"):
                raise InitialAccessTokenError(
                    f"the environment variable {var} (the initial access token, RFC 7591 §3) "
                    "is not set; nothing was changed"
                )
            if not args.json:
                print(plan.render())
            if not plan.has_changes:
                if args.json:
                    _print_json(plan, ApplyResult())
                return 0
            try:
                result = await apply(plan, state, server, secrets=sink)
            except ApplyError as exc:
                _report(args, plan, exc.result)
                return _fail(str(exc))
            _report(args, plan, result)
            return 0

        return _with_server(spec, state, body, token=token)

    return _guarded(run)


def _report(args: argparse.Namespace, plan: Plan, result: ApplyResult) -> None:
    if args.json:
        _print_json(plan, result)
    else:
        print()
        print(result.render())


def _print_json(plan: Plan, result: ApplyResult) -> None:
    print(json.dumps({"plan": plan.to_dict(), "result": result.to_dict()}, indent=2))


def _apply(args: argparse.Namespace) -> int:
    return _perform(args, destroy=False)


def _destroy(args: argparse.Namespace) -> int:
    return _perform(args, destroy=True)


def _import(args: argparse.Namespace) -> int:
    def run() -> int:
        spec, state = _open(args)
        token = os.environ.get(args.token_env)
        if not token:
            return _fail(f"the environment variable {args.token_env} is not set")

        async def body(server: Registrar) -> int:
            record = await import_client(
                spec,
                state,
                server,
                args.name,
                args.client_id,
                token,
                registration_client_uri=args.registration_client_uri,
            )
            print(f'imported client "{args.name}" ({record.client_id}) into {state.path}')
            return 0

        return _with_server(spec, state, body)

    return _guarded(run)


def _forget(args: argparse.Namespace) -> int:
    def run() -> int:
        _, state = _open(args)
        with state.lock():
            record = forget(state, args.name)
        print(
            f'forgot client "{args.name}" ({record.client_id}); the server still has it: '
            "delete it there if it should go"
        )
        return 0

    return _guarded(run)
