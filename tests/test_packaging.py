"""What a new user gets from `pip install rs_guard`: the wheel, light imports, clear extras.

The wheel is built once per run (`pip wheel --no-deps`, hatchling from the configured index);
everything else runs in subprocesses, some with the optional packages (uvicorn, fastapi, redis,
mcp) made unimportable by a meta-path finder, which is what a plain install without extras
looks like to rs_guard.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Iterable, Iterator
from email.parser import Parser
from importlib.metadata import entry_points
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
# What a new user reads: the README and the documentation site's pages.
DOC_PAGES = [README, *sorted((ROOT / "docs").rglob("*.md"))]
EXTRAS = ("uvicorn", "fastapi", "redis", "mcp")
RUNTIME = ("starlette", "pyjwt", "cryptography", "httpx", "cachetools")

# Prepended to subprocess code: the named top-level packages behave as if not installed.
_ABSENT = """
import importlib.abc, sys
class _Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {absent!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, _Absent())
"""


def clean_env() -> dict[str, str]:
    """The environment for child processes, without the outer pytest run's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def python(
    code: str, *, absent: Iterable[str] = (), cwd: Path | None = None, args: Iterable[str] = ()
) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh interpreter (optionally with packages made unimportable)."""
    prelude = _ABSENT.format(absent=set(absent)) if absent else ""
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=clean_env(),
        check=False,
    )


def loaded_modules(result: subprocess.CompletedProcess[str]) -> set[str]:
    """The JSON list of module names a child printed on its last stdout line."""
    assert result.returncode == 0, result.stderr[-3000:]
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


# -- the wheel --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
        env=clean_env(),
        check=False,
    )
    if (
        result.returncode != 0
        and "hatchling" in result.stderr
        and (
            "No matching distribution" in result.stderr
            or "Could not find a version" in result.stderr
        )
    ):
        pytest.skip("the build backend (hatchling) cannot be installed here")
    assert result.returncode == 0, result.stderr[-3000:]
    (built,) = out.glob("rs_guard-*.whl")
    with zipfile.ZipFile(built) as archive:
        yield archive


def test_wheel_ships_the_package_its_types_and_the_idp_and_nothing_else(
    wheel: zipfile.ZipFile,
) -> None:
    names = set(wheel.namelist())
    for required in (
        "rs_guard/__init__.py",
        "rs_guard/__main__.py",
        "rs_guard/py.typed",  # PEP 561: users' type checkers read rs_guard's hints
        "rs_guard/pytest_plugin.py",
        "rs_guard/testing.py",
        "rs_guard/idp/__init__.py",
        "rs_guard/idp/app.py",
    ):
        assert required in names, required
    tops = {name.split("/", 1)[0] for name in names}
    assert tops == {"rs_guard", next(t for t in tops if t.endswith(".dist-info"))}
    assert not any(n.startswith(("tests/", "examples/", "benchmarks/", "docs/")) for n in names)
    assert "rs_guard/demo.py" not in names  # the demo is `make demo` in a checkout
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)


def test_wheel_metadata_keeps_the_extras_optional(wheel: zipfile.ZipFile) -> None:
    info = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    metadata = Parser().parsestr(wheel.read(info).decode())
    requires = metadata.get_all("Requires-Dist") or []
    unconditional = {
        re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0].lower() for r in requires if ";" not in r
    }
    assert unconditional == set(RUNTIME)
    assert {"idp", "fastapi", "redis", "mcp"} <= set(metadata.get_all("Provides-Extra") or [])
    for package, extra in (("uvicorn", "idp"), ("fastapi", "fastapi"), ("redis", "redis")):
        assert any(
            r.lower().startswith(package) and f"extra == '{extra}'" in r.replace('"', "'")
            for r in requires
        ), package
    assert metadata["Requires-Python"] == ">=3.11"


def test_wheel_registers_the_script_and_no_pytest_plugin(wheel: zipfile.ZipFile) -> None:
    info = next(n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt"))
    text = wheel.read(info).decode()
    assert "pytest11" not in text  # the plugin is opt-in: installing rs_guard injects nothing
    assert re.search(r"\[console_scripts\]\s*\nrs-guard = rs_guard\.__main__:main", text)


# -- imports without extras ------------------------------------------------------------


def test_import_rs_guard_loads_no_extra_and_no_idp() -> None:
    # The root imports its core names plainly (the plugin is opt-in, so only users of
    # rs_guard import it); the IdP and every extra stay unloaded until asked for.
    result = python("import sys, json, rs_guard; print(json.dumps(sorted(sys.modules)))")
    loaded = loaded_modules(result)
    heavy = {*EXTRAS, "rs_guard.idp", "rs_guard.pytest_plugin"}
    assert not loaded & heavy, loaded & heavy


def test_every_public_name_imports_without_any_extra() -> None:
    result = python(
        """
        import json, sys, rs_guard
        for name in rs_guard.__all__:
            getattr(rs_guard, name)
        import rs_guard.challenge, rs_guard.events, rs_guard.exchange, rs_guard.mcp
        import rs_guard.observe, rs_guard.ppid, rs_guard.replay
        from rs_guard import AccessToken, Requirement, ResourceGuard, require
        print(json.dumps(sorted(sys.modules)))
        """,
        absent=EXTRAS,
    )
    assert not loaded_modules(result) & {*EXTRAS, "rs_guard.idp"}


def test_the_bundled_idp_works_in_process_without_uvicorn() -> None:
    result = python(
        """
        import asyncio, json, sys
        import httpx
        from starlette.applications import Starlette
        from starlette.middleware import Middleware
        from starlette.responses import PlainTextResponse
        from starlette.routing import Route
        from rs_guard import ResourceGuard, require
        from rs_guard.idp import IdP

        @require("items:read")
        async def items(request):
            return PlainTextResponse(request.auth.subject)

        async def main():
            idp = IdP("https://idp.example")
            app = Starlette(routes=[Route("/items", items)], middleware=[Middleware(
                ResourceGuard, issuer=idp.issuer, resource="https://api.example",
                http_client=idp.http_client())])
            token = idp.issue_access_token(
                "alice", client_id="c", audience="https://api.example", scope="items:read")
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="https://api.example"
            ) as api:
                r = await api.get("/items", headers={"Authorization": f"Bearer {token}"})
            assert (r.status_code, r.text) == (200, "alice"), (r.status_code, r.text)

        asyncio.run(main())
        print(json.dumps(sorted(sys.modules)))
        """,
        absent=EXTRAS,
    )
    assert not loaded_modules(result) & set(EXTRAS)


def test_cli_help_works_without_uvicorn_and_serving_names_the_extra() -> None:
    help_ = python("from rs_guard.__main__ import main; main(['idp', '--help'])", absent=EXTRAS)
    assert help_.returncode == 0 and "--issuer" in help_.stdout, help_.stderr
    serve = python(
        "import sys; from rs_guard.__main__ import main; sys.exit(main(['idp', '--port', '0']))",
        absent=EXTRAS,
    )
    assert serve.returncode == 2
    assert "pip install 'rs_guard[idp]'" in serve.stderr
    assert "Traceback" not in serve.stderr


def test_redis_store_without_redis_names_the_extra() -> None:
    result = python(
        """
        from rs_guard import ConfigurationError, RedisReplayStore
        try:
            RedisReplayStore(url="redis://127.0.0.1:6379/0")
        except ConfigurationError as exc:
            print(exc)
        """,
        absent=EXTRAS,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "rs_guard[redis]" in result.stdout


def test_fastapi_integration_without_fastapi_names_the_extra() -> None:
    result = python("import rs_guard.fastapi", absent=EXTRAS)
    assert result.returncode != 0
    assert "rs_guard[fastapi]" in result.stderr


def test_serving_from_rs_guard_testing_without_uvicorn_names_the_extra() -> None:
    result = python(
        """
        from rs_guard.testing import serve  # the rest of the toolkit needs no uvicorn
        with serve(lambda scope, receive, send: None):
            pass
        """,
        absent=EXTRAS,
    )
    assert result.returncode != 0
    assert "rs_guard[idp]" in result.stderr


# -- the pytest plugin -------------------------------------------------------------------


def test_pytest_plugin_is_opt_in_and_light_to_load(tmp_path: Path) -> None:
    assert not [e for e in entry_points(group="pytest11") if e.value.startswith("rs_guard")]
    (tmp_path / "test_unrelated.py").write_text("def test_nothing():\n    assert True\n")
    run = """
        import json, sys, pytest
        code = pytest.main(["-q", "-p", "no:cacheprovider", *sys.argv[1:], "test_unrelated.py"])
        assert code == 0, code
        print(json.dumps(sorted(sys.modules)))
        """
    # Other installed plugins (hypothesis, anyio) are turned off: they only cost time here.
    others = [f"-pno:{e.name}" for e in entry_points(group="pytest11")]
    without = loaded_modules(python(run, cwd=tmp_path, args=others))
    opted_in = loaded_modules(
        python(run, cwd=tmp_path, args=[*others, "-p", "rs_guard.pytest_plugin"])
    )
    assert not {m for m in without if m.partition(".")[0] == "rs_guard"}
    # Loading the plugin imports no IdP and no extra until a test asks for a fixture.
    assert "rs_guard.pytest_plugin" in opted_in
    assert not (opted_in - without) & {*EXTRAS, "rs_guard.idp", "rs_guard.testing"}


# -- what the README and the docs tell a new user to run ------------------------------------------


def _readme_commands() -> list[str]:
    """The lines of the README's and the docs' ```sh blocks, continuation lines joined."""
    lines: list[str] = []
    in_sh = False
    text = "\n".join(page.read_text(encoding="utf-8") for page in DOC_PAGES)
    for line in text.splitlines():
        if line.strip().startswith("```"):
            in_sh = line.strip() == "```sh" and not in_sh
            continue
        if in_sh:
            if lines and lines[-1].endswith("\\"):
                lines[-1] = lines[-1][:-1] + " " + line.strip()
            else:
                lines.append(line.strip())
    return lines


def test_readme_cli_flags_exist() -> None:
    help_ = python("from rs_guard.__main__ import main; main(['idp', '--help'])")
    documented = {
        flag
        for line in _readme_commands()
        if "python -m rs_guard idp" in line
        for flag in re.findall(r"(?<![\w-])--[a-z][a-z-]*", line.split("#", 1)[0])
    }
    assert documented, "the docs document `python -m rs_guard idp`"
    missing = {flag for flag in documented if flag not in help_.stdout}
    assert not missing, missing


def test_readme_make_targets_modules_and_paths_exist() -> None:
    text = "\n".join(page.read_text(encoding="utf-8") for page in DOC_PAGES)
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"`make (\w+)", text))
    targets |= {line.split()[1] for line in _readme_commands() if line.startswith("make ")}
    assert {"demo", "test", "bench", "docs"} <= targets
    readme = README.read_text(encoding="utf-8")
    assert "make demo" in readme and "make test" in readme
    for target in targets:
        assert re.search(rf"^{target}:", makefile, re.M), f"make {target}"
    for module in set(re.findall(r"python -m ((?:examples|rs_guard)[\w.]*)", text)):
        base = ROOT.joinpath(*module.split("."))
        assert base.with_suffix(".py").is_file() or (base / "__main__.py").is_file(), module
    for path in set(re.findall(r"\b((?:examples|tests|benchmarks)/[\w./-]*\w)", text)):
        assert (ROOT / path).exists(), path
