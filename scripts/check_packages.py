"""The packages as a user gets them: built wheels, installed into fresh virtual environments.

    python scripts/check_packages.py            # everything (make test runs it)
    python scripts/check_packages.py --keep     # keep the work folder (venvs, logs)
    python scripts/check_packages.py --only runanywhere-vad-silero --dist dist --core-from-index
                                                # the release workflow's test job: one
                                                # distribution, its wheel from dist/, the core
                                                # it pins from the package index

Every step of the release workflow up to publishing, for every distribution at once:

1. ``scripts/release.py`` builds every sdist and wheel into a fresh folder and checks them.
2. The core wheel ALONE in a fresh venv: ``runanywhere adapters`` lists no adapter; asking for
   one (``get_adapter``, the old import path, ``info``, ``demo``) names the package to install.
3. The core plus each adapter package ALONE, one fresh venv each: its adapters register
   (``runanywhere adapters --json``, from this distribution), the modules come from the venv's
   site-packages (not this source tree), and the package's own tests pass against it (copied to
   a temporary folder; the repository's ``tests/support`` and ``harness`` helpers on the path).
4. A third-party adapter written against the public API only, in a temporary folder, installed
   with ``pip install ./thirdparty`` next to the core wheel: ``runanywhere adapters`` finds it and
   it runs a tiny ONNX model (made here) that a catalog entry naming its ``adapter`` pulls from
   nginx on 127.0.0.1.

Our own wheels are given to pip as files (never looked up on an index, where another project
may hold the name); third-party requirements come through pip's cache. Exits non-zero on the
first failure, saying which step failed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import venv
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from release import Project, all_projects, artifacts, load_project  # noqa: E402

#: Environment of every command run in a venv: nothing of the developer's leaks in.
SCRUB = ("RUNANYWHERE_HOME", "RUNANYWHERE_CATALOG", "RUNANYWHERE_OFFLINE", "PYTHONPATH",
         "VIRTUAL_ENV", "PYTHONHOME", "PYTHONSTARTUP")


class Failed(Exception):
    """A check that did not hold (the message says which)."""


_T0 = time.monotonic()


def log(msg: str) -> None:
    """A line with the seconds since the start (each phase's cost shows in make test's log)."""
    print(f"check-packages: [{time.monotonic() - _T0:4.0f} s] {msg}", flush=True)


def expect(cond: bool, what: str) -> None:
    if not cond:
        raise Failed(what)


class Venv:
    """A fresh virtual environment (no system site-packages) with a clean environment: a copy of
    ``template`` when given (a fresh venv made once: ensurepip takes seconds, a minute and more
    on a loaded machine, and gives every venv the same pip), else made here."""

    def __init__(self, folder: Path, home: Path, template: Path | None = None) -> None:
        self.folder = folder
        if template is None:
            venv.EnvBuilder(with_pip=True, clear=True).create(folder)
        else:
            copy_venv(template, folder)
        self.python = folder / "bin" / "python"
        self.env = {k: v for k, v in os.environ.items() if k not in SCRUB}
        self.env.update(RUNANYWHERE_HOME=str(home), NO_PROXY="127.0.0.1,localhost",
                        PATH=f"{folder / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")

    def run(self, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(list(args), cwd=cwd or self.folder, env={**self.env, **(env or {})},
                              capture_output=True, text=True, timeout=900)
        if check and done.returncode != 0:
            raise Failed(f"{' '.join(args[:6])} ... exited {done.returncode}:\n"
                         f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done

    def pip(self, *args: str) -> None:
        self.run(str(self.python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                 *args)

    def cli(self, *args: str, check: bool = True, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
        return self.run(str(self.folder / "bin" / "runanywhere"), *args, check=check, env=env)

    def py(self, code: str, check: bool = True, env: dict[str, str] | None = None
           ) -> subprocess.CompletedProcess[str]:
        return self.run(str(self.python), "-c", textwrap.dedent(code), check=check, env=env)

    def site_packages(self) -> Path:
        out = self.py("import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout
        return Path(out.strip()).resolve()


def copy_venv(template: Path, folder: Path) -> None:
    """``template`` (a venv holding only pip) copied to ``folder``; the scripts' ``#!`` lines
    and the activate scripts name ``folder`` (``bin/python`` stays a link to the base Python)."""
    shutil.copytree(template, folder, symlinks=True)
    for script in (folder / "bin").iterdir():
        if script.is_symlink() or not script.is_file():
            continue
        data = script.read_bytes()
        if str(template).encode() in data:
            script.write_bytes(data.replace(str(template).encode(), str(folder).encode()))


def adapters_json(env: Venv) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(env.cli("adapters", "--json").stdout)
    return doc


# -- 2. the core alone -----------------------------------------------------------------------------


def check_core_alone(env: Venv, core: Path) -> None:
    env.pip(str(core))
    doc = adapters_json(env)
    expect(doc["adapters"] == [], f"the core alone lists adapters: {doc['adapters']}")
    missing = {n["name"]: n["distribution"] for n in doc["not_installed"]}
    expect(missing.get("silero-vad") == "runanywhere-vad-silero",
           f"the core alone does not name silero-vad's package: {missing}")
    text = env.cli("adapters")
    expect("no adapter installed" in text.stderr and "runanywhere-vad-silero" in text.stderr,
           f"`runanywhere adapters` alone says: {text.stderr!r}")
    asked = env.py("""
        from runanywhere.adapters import get_adapter
        from runanywhere.errors import PluginNotInstalledError
        try:
            get_adapter("silero-vad")
        except PluginNotInstalledError as e:
            print(e)
        try:
            from runanywhere.adapters import WhisperSTTAdapter
        except ImportError as e:
            print(e)
    """).stdout.splitlines()
    expect(len(asked) == 2 and "pip install runanywhere-vad-silero" in asked[0]
           and "runanywhere[vad]" in asked[0] and "pip install runanywhere-stt-whisper" in asked[1],
           f"asking for an adapter the core lacks says: {asked}")
    info = env.cli("info", "silero-vad").stdout
    expect("silero-vad (not installed: pip install runanywhere-vad-silero)" in info,
           f"`info silero-vad` does not name the package:\n{info}")
    demo = env.cli("demo", check=False)
    expect(demo.returncode != 0 and "pip install runanywhere-vad-silero" in demo.stderr,
           f"`demo` without the VAD package: exit {demo.returncode}, {demo.stderr!r}")
    log("core alone: no adapter listed; get_adapter, the old import path, info and demo name"
        " the package to install")


# -- 3. each package alone -------------------------------------------------------------------------


def check_package_alone(env: Venv, core: Path | None, project: Project, wheel: Path,
                        work: Path) -> None:
    t_install = time.monotonic()
    # --find-links: a package's test extra may name a sibling package (built beside it).
    env.pip("--find-links", str(wheel.parent), *([str(core)] if core else []), f"{wheel}[test]")
    t_install = time.monotonic() - t_install
    declared = project.entry_points().get("runanywhere.adapters", {})
    doc = adapters_json(env)
    found = {a["name"]: a for a in doc["adapters"]}
    # Adapters of other distributions may come with the test extra (a sibling package a test
    # listens with); this distribution must register exactly what its pyproject declares.
    mine = {n for n, a in found.items() if a["distribution"] == project.name}
    expect(mine == set(declared),
           f"{project.name} alone registers {sorted(mine)}, its pyproject declares"
           f" {sorted(declared)}")
    for name in declared:
        a = found[name]
        expect(a["distribution"] == project.name and a["version"] == project.version()
               and a["available"] and a["model_types"] is not None,
               f"{project.name}: adapter {name} listed as {a}")
    site = env.site_packages()
    where = env.py(f"import runanywhere, {project.module} as m; print(m.__file__);"
                   " print(runanywhere.__file__)").stdout.split()
    expect(all(Path(p).resolve().is_relative_to(site) for p in where),
           f"{project.name}: imported from {where}, not from {site}")
    tests = work / f"{project.name}-tests"
    shutil.copytree(project.folder / "tests", tests)
    write_pytest_ini(tests)
    # The tests import the repository's helpers (tests/support, harness) but never its sources:
    # src/ and packages/*/src are not on this path.
    t_tests = time.monotonic()
    run = env.run(str(env.python), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                  "--rootdir", str(tests), "--timeout", "600", str(tests), cwd=tests,
                  env={"PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}"}, check=False)
    t_tests = time.monotonic() - t_tests
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
    if run.returncode != 0:
        raise Failed(f"{project.name}: its tests failed against the installed wheel:\n"
                     f"{run.stdout[-6000:]}\n{run.stderr[-2000:]}")
    log(f"{project.name} alone: registers {', '.join(sorted(declared))}; imported from"
        f" site-packages; its tests against the wheel: {summary} (install {t_install:.0f} s,"
        f" tests {t_tests:.0f} s)")


def write_pytest_ini(folder: Path) -> None:
    """The repository's warning rules (pyproject's ``filterwarnings``: a DeprecationWarning our
    code causes is an error) for the copy of a package's tests, which is its own rootdir."""
    tool: Any = load_project(ROOT).pyproject["tool"]
    rules = tool["pytest"]["ini_options"].get("filterwarnings", [])
    (folder / "pytest.ini").write_text(
        "[pytest]\nfilterwarnings =\n" + "".join(f"    {r}\n" for r in rules))


# -- 4. a third-party adapter ----------------------------------------------------------------------

THIRDPARTY_MODULE = '''
"""A third-party adapter: doubles numbers with an ONNX model, using runanywhere's public API."""

from typing import Any, ClassVar

import numpy as np

from runanywhere.adapters import BaseAdapter, CommonEvent


class DoublerAdapter(BaseAdapter[CommonEvent]):
    model_types: ClassVar[tuple[str, ...]] = ("custom",)
    formats: ClassVar[tuple[str, ...]] = ("onnx",)
    runtime: ClassVar[str] = "onnx"

    def double(self, values: Any) -> list[float]:
        session = self.require_model()
        x = np.asarray(values, dtype=np.float32).reshape(1, -1)
        (y,) = session.run(None, {"x": x})
        return [float(v) for v in y.reshape(-1)]
'''

THIRDPARTY_PYPROJECT = '''
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "ra-doubler"
version = "1.0.0"
dependencies = ["runanywhere[onnx]>=0.2,<0.3"]

[project.entry-points."runanywhere.adapters"]
doubler = "ra_doubler:DoublerAdapter"
'''

THIRDPARTY_RUN = '''
import asyncio
from runanywhere import ModelRegistry
from runanywhere.adapters import get_adapter

async def main():
    registry = ModelRegistry()
    await registry.initialize()
    meta = registry.get_model("doubler-model")
    adapter = get_adapter(meta.adapter_name)(registry)
    (await adapter.load_model("doubler-model")).unwrap()
    print(meta.adapter_name, type(adapter).__module__, adapter.double([1.5, -2.0, 4.0]))

asyncio.run(main())
'''


def tiny_onnx(path: Path) -> None:
    """y = x * 2 over a float32 [1, N] input, made with the onnx package (this venv's)."""
    import onnx
    from onnx import TensorProto, helper

    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "two"], ["y"])], "doubler",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, None])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, None])], [two])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def check_thirdparty(env: Venv, core: Path, work: Path) -> None:
    from harness.nginx import Nginx

    src = work / "thirdparty"
    src.mkdir()
    (src / "pyproject.toml").write_text(THIRDPARTY_PYPROJECT)
    (src / "ra_doubler.py").write_text(THIRDPARTY_MODULE)
    env.pip(str(core), str(src))
    doc = adapters_json(env)
    found = {a["name"]: a for a in doc["adapters"]}
    expect(list(found) == ["doubler"] and found["doubler"]["distribution"] == "ra-doubler"
           and found["doubler"]["model_types"] == ["custom"] and found["doubler"]["available"],
           f"runanywhere adapters with the third-party package: {doc['adapters']}")

    served = work / "origin"
    served.mkdir()
    tiny_onnx(served / "doubler.onnx")
    data = (served / "doubler.onnx").read_bytes()
    server = Nginx(served, work / "nginx")
    server.start()
    try:
        catalog = work / "catalog.json"
        catalog.write_text(json.dumps({"format_version": 1, "models": [{
            "id": "doubler-model", "name": "doubler", "type": "custom", "format": "onnx",
            "provider": "third party", "version": "1", "adapter": "doubler",
            "size": len(data), "url": f"{server.url}/doubler.onnx",
            "hash": "sha256:" + hashlib.sha256(data).hexdigest()}]}))
        run_env = {"RUNANYWHERE_CATALOG": str(catalog)}
        info = env.cli("info", "doubler-model", env=run_env).stdout
        expect("doubler (ra-doubler 1.0.0)" in info, f"info doubler-model:\n{info}")
        out = env.py(THIRDPARTY_RUN, env=run_env).stdout.split(None, 2)
        expect(out[:2] == ["doubler", "ra_doubler"] and json.loads(out[2]) == [3.0, -4.0, 8.0],
               f"the third-party adapter ran: {out}")
        pulled = [r for r in server.records() if r.uri.endswith("/doubler.onnx") and r.status < 300]
        expect(bool(pulled), "the model was not pulled from nginx")
    finally:
        server.stop()
    log("third-party adapter: `pip install ./thirdparty` registers 'doubler' (ra-doubler 1.0.0);"
        " a catalog entry naming it pulls an ONNX model from nginx and it doubles [1.5, -2, 4]")


# -- the run ---------------------------------------------------------------------------------------


def build_all(projects: list[Project], dist: Path, isolation: bool) -> None:
    """release.py over ``projects`` into ``dist``: two processes at once, each building every
    other distribution (a build uses one core; this machine has two)."""
    names = [p.name for p in projects]
    shares = [names[0::2], names[1::2]] if len(names) > 1 else [names]
    commands = [[sys.executable, str(ROOT / "scripts" / "release.py"), "--out", str(dist),
                 *share, *([] if isolation else ["--no-isolation"])] for share in shares]
    with ThreadPoolExecutor(max_workers=len(commands)) as pool:
        runs = list(pool.map(lambda cmd: subprocess.run(cmd, capture_output=True, text=True),
                             commands))
    for done in runs:
        if done.returncode != 0:
            raise Failed(f"release.py failed:\n{done.stdout}\n{done.stderr}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--isolation", action="store_true",
                        help="build in isolated environments as the release workflow does")
    parser.add_argument("--only", metavar="DISTRIBUTION",
                        help="check one distribution (the core: alone and with a third-party"
                             " adapter; a package: alone with the core)")
    parser.add_argument("--dist", type=Path, metavar="DIR",
                        help="use the wheels release.py put in DIR instead of building")
    parser.add_argument("--core-from-index", action="store_true",
                        help="packages: let pip take the core they pin from the package index")
    args = parser.parse_args(argv)
    t0 = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="runanywhere-packages-"))
    try:
        projects = all_projects()
        if args.only:
            projects = [p for p in projects if p.name == args.only]
            if not projects:
                raise Failed(f"no distribution {args.only!r} in this repository")
        dist = args.dist or work / "dist"
        if args.dist is None:
            build_all(projects, dist, args.isolation)
            log(f"built and checked {len(projects)} distribution(s) ({2 * len(projects)} files)")
        home = work / "home"
        core_project = next((p for p in projects if p.is_core), None)
        core: Path | None = None
        if core_project is not None or not args.core_from_index:
            core = artifacts(core_project or all_projects()[0], dist)[1]
        template = work / "venv-template"
        venv.EnvBuilder(with_pip=True, clear=True).create(template)
        log("a fresh venv with pip: the template of each venv below")

        def core_checks(core: Path) -> None:
            alone = Venv(work / "venv-core", home, template)
            check_core_alone(alone, core)
            check_thirdparty(alone, core, work)

        def one(project: Project) -> None:
            t = time.monotonic()
            env = Venv(work / f"venv-{project.name}", home, template)
            log(f"{project.name}: fresh venv in {time.monotonic() - t:.0f} s")
            check_package_alone(env, core, project, artifacts(project, dist)[1], work)
            if not args.keep:
                shutil.rmtree(env.folder)

        # Two at a time (the machine's two cores): most of each is pip unpacking wheels. The
        # core's own checks are one of the jobs, not a phase before them.
        with ThreadPoolExecutor(max_workers=2) as pool:
            jobs = [pool.submit(core_checks, core)] if core_project is not None and core else []
            jobs += [pool.submit(one, p) for p in projects if not p.is_core]
            for done_ in jobs:
                done_.result()  # the first failure, in this order
    except Failed as e:
        log(f"FAILED: {e}")
        log(f"work folder kept: {work}")
        return 1
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        log(f"work folder: {work}")
    log(f"all checks passed in {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
