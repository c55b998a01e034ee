"""Build the sdist and wheel of the core and of every adapter package, then check them.

    python scripts/release.py                          # everything, into dist/
    python scripts/release.py runanywhere-vad-silero   # one distribution (the release workflow)
    python scripts/release.py --no-isolation --out DIR # from this venv's setuptools (CI: faster)
    python scripts/release.py --check-only             # check what dist/ holds, build nothing
    python scripts/release.py --tag runanywhere-vad-silero==0.2.0   # a release tag: that one,
                                                       # and only if its version is the tag's

A distribution is the repository root (``runanywhere``) or a folder ``packages/<family>``
(``runanywhere-<family>``). Each is built with ``python -m build`` and then held to:

- ``twine check --strict`` on its sdist and wheel (metadata PyPI accepts, a README that renders);
- the wheel's version is the package's single version source (``__version__``) and its
  CHANGELOG.md has a section for it;
- the wheel holds ``py.typed``, every module of the source tree and exactly the entry points
  of its pyproject.toml, and nothing from tests (no ``tests/``, ``test_*.py``, ``conftest.py``);
- an adapter package requires ``runanywhere>=0.2,<0.3``: the core's minor version it works with;
- the core's extras ``vad``, ``stt``, ``tts``, ``llm`` require adapter packages of the same pin.

Exits non-zero with one line per problem.
"""

from __future__ import annotations

import argparse
import ast
import email.parser
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the venv runs 3.11+; 3.10 users install tomli
    import tomli as tomllib  # type: ignore[import-not-found]

ROOT = Path(__file__).resolve().parent.parent
#: The range of the core an adapter package declares (the core's minor version is its API).
CORE_PIN = ">=0.2,<0.3"
ADAPTER_EXTRAS = ("vad", "stt", "tts", "llm")
TEST_PARTS = re.compile(r"(^|/)(tests?/|conftest\.py$|test_[^/]*\.py$)")


@dataclass(frozen=True)
class Project:
    """One distribution of the repository."""

    folder: Path
    name: str  # the distribution: runanywhere, runanywhere-vad-silero, ...
    module: str  # the import package: runanywhere, runanywhere_vad_silero, ...
    pyproject: dict[str, object]

    @property
    def is_core(self) -> bool:
        return self.name == "runanywhere"

    @property
    def source(self) -> Path:
        return self.folder / "src" / self.module

    @property
    def wheel_stem(self) -> str:
        return self.name.replace("-", "_")

    def version(self) -> str:
        """``__version__`` of the package's ``__init__.py``, read without importing it."""
        tree = ast.parse((self.source / "__init__.py").read_text())
        for node in tree.body:
            if (isinstance(node, ast.Assign) and len(node.targets) == 1
                    and isinstance(node.targets[0], ast.Name)
                    and node.targets[0].id == "__version__"
                    and isinstance(node.value, ast.Constant)):
                return str(node.value.value)
        raise SystemExit(f"{self.source / '__init__.py'}: no __version__ = '...'")

    def entry_points(self) -> dict[str, dict[str, str]]:
        project = self.pyproject["project"]
        assert isinstance(project, dict)
        eps = project.get("entry-points", {})
        scripts = project.get("scripts", {})
        assert isinstance(eps, dict) and isinstance(scripts, dict)
        out = {group: dict(items) for group, items in eps.items()}
        if scripts:
            out["console_scripts"] = dict(scripts)
        return out


def load_project(folder: Path) -> Project:
    data = tomllib.loads((folder / "pyproject.toml").read_text())
    name = data["project"]["name"]
    return Project(folder, name, name.replace("-", "_"), data)


def all_projects() -> list[Project]:
    packages = sorted(p.parent for p in (ROOT / "packages").glob("*/pyproject.toml"))
    return [load_project(ROOT), *(load_project(p) for p in packages)]


def pick(projects: list[Project], names: list[str]) -> list[Project]:
    if not names:
        return projects
    by_name = {p.name: p for p in projects}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise SystemExit(f"unknown distribution(s): {', '.join(unknown)} (known: "
                         f"{', '.join(by_name)})")
    return [by_name[n] for n in names]


def from_tag(projects: list[Project], tag: str) -> Project:
    """The distribution a release tag names (``runanywhere-vad-silero==0.2.0``), checked to be
    at that version: a tag never publishes a version its source does not say."""
    name, sep, version = tag.partition("==")
    if not sep or not version:
        raise SystemExit(f"release tag {tag!r} is not NAME==VERSION (runanywhere==0.2.0,"
                         " runanywhere-vad-silero==0.2.0)")
    project = pick(projects, [name])[0]
    if project.version() != version:
        raise SystemExit(f"release tag {tag!r}: {project.name}'s __version__ is"
                         f" {project.version()}, not {version}")
    return project


def build(project: Project, out: Path, isolation: bool) -> None:
    cmd = [sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(out)]
    if not isolation:
        cmd.append("--no-isolation")
    # setuptools packs build/lib as it finds it: a module deleted since the last build would
    # ride along in the wheel.
    shutil.rmtree(project.folder / "build", ignore_errors=True)
    where = project.folder.relative_to(ROOT).as_posix() if project.folder != ROOT else "."
    print(f"build   {project.name} ({where})", flush=True)
    done = subprocess.run([*cmd, str(project.folder)], capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        raise SystemExit(f"building {project.name} failed (exit {done.returncode})")


def artifacts(project: Project, out: Path) -> tuple[Path, Path]:
    version = project.version()
    wheels = sorted(out.glob(f"{project.wheel_stem}-{version}-*.whl"))
    sdists = sorted(out.glob(f"{project.wheel_stem}-{version}.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        raise SystemExit(f"{project.name} {version}: expected one wheel and one sdist in {out},"
                         f" found {[p.name for p in wheels + sdists]}")
    return sdists[0], wheels[0]


def _entry_points_txt(text: str) -> dict[str, dict[str, str]]:
    groups: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            current = groups.setdefault(line[1:-1], {})
        elif "=" in line and current is not None:
            key, _, value = line.partition("=")
            current[key.strip()] = value.strip()
    return groups


def _requirement(spec: str) -> tuple[str, str, str]:
    """(name, version specifier, marker) of a Requires-Dist line."""
    from packaging.requirements import Requirement

    req = Requirement(spec)
    return req.name, str(req.specifier), str(req.marker or "")


def _same_pin(specifier: str) -> bool:
    from packaging.specifiers import SpecifierSet

    return SpecifierSet(specifier) == SpecifierSet(CORE_PIN)


def check_wheel(project: Project, wheel: Path) -> list[str]:
    problems = []
    version = project.version()
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        info = f"{project.wheel_stem}-{version}.dist-info"
        meta = email.parser.Parser().parsestr(zf.read(f"{info}/METADATA").decode())
        eps = _entry_points_txt(zf.read(f"{info}/entry_points.txt").decode()
                                if f"{info}/entry_points.txt" in names else "")
    if meta["Version"] != version:
        problems.append(f"METADATA Version {meta['Version']} is not __version__ {version}")
    want_modules = {f"{project.module}/{p.relative_to(project.source).as_posix()}"
                    for p in project.source.rglob("*.py") if "__pycache__" not in p.parts}
    lost = sorted(want_modules - names)
    if lost:
        problems.append(f"modules missing from the wheel: {', '.join(lost)}")
    if f"{project.module}/py.typed" not in names:
        problems.append(f"no {project.module}/py.typed in the wheel")
    from_tests = sorted(n for n in names if TEST_PARTS.search(n))
    if from_tests:
        problems.append(f"files from tests in the wheel: {', '.join(from_tests)}")
    foreign = sorted(n for n in names if not n.startswith((f"{project.module}/", f"{info}/")))
    if foreign:
        problems.append(f"files outside {project.module}/ in the wheel: {', '.join(foreign)}")
    declared = {g: items for g, items in project.entry_points().items()}
    if eps != declared:
        problems.append(f"entry points {eps} are not the pyproject's {declared}")
    requires = [_requirement(r) for r in meta.get_all("Requires-Dist") or []]
    if project.is_core:
        for extra in ADAPTER_EXTRAS:
            pulled = [(n, s) for n, s, m in requires if f'extra == "{extra}"' in m]
            if not pulled or not all(n.startswith("runanywhere-") and _same_pin(s)
                                     for n, s in pulled):
                problems.append(f"extra [{extra}] must pull adapter packages pinned {CORE_PIN},"
                                f" not {pulled}")
        adapters = [g for g in eps if g == "runanywhere.adapters"]
        if adapters:
            problems.append("the core registers adapters: every adapter belongs in a package")
    else:
        core = [s for n, s, m in requires if n == "runanywhere" and not m]
        if len(core) != 1 or not _same_pin(core[0]):
            problems.append(f"Requires-Dist must pin runanywhere{CORE_PIN}, found {core}")
        if not eps.get("runanywhere.adapters") and not eps.get("runanywhere.runtimes"):
            problems.append("registers no adapter or runtime entry point")
    changelog = project.folder / "CHANGELOG.md"
    if not changelog.is_file():
        problems.append(f"no {changelog.relative_to(ROOT)}")
    elif not re.search(rf"^## \[?{re.escape(version)}\]?\b", changelog.read_text(), re.M):
        problems.append(f"{changelog.relative_to(ROOT)} has no '## {version}' section")
    return problems


def twine_check(files: list[Path]) -> list[str]:
    done = subprocess.run([sys.executable, "-m", "twine", "check", "--strict",
                           *map(str, files)], capture_output=True, text=True)
    if done.returncode == 0:
        return []
    return [line for line in (done.stdout + done.stderr).splitlines()
            if "FAILED" in line or "ERROR" in line or "WARNING" in line] or ["twine check failed"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="DISTRIBUTION",
                        help="what to build (default: the core and every package)")
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="default: dist/")
    parser.add_argument("--no-isolation", action="store_true",
                        help="build with this environment's setuptools (no download)")
    parser.add_argument("--check-only", action="store_true", help="build nothing")
    parser.add_argument("--tag", help="a release tag NAME==VERSION: build that distribution,"
                        " after checking its version is the tag's")
    args = parser.parse_args(argv)
    if args.tag and args.names:
        parser.error("give a tag or distribution names, not both")
    projects = ([from_tag(all_projects(), args.tag)] if args.tag
                else pick(all_projects(), args.names))
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.check_only:
        for project in projects:
            for old in artifacts_glob(project, args.out):
                old.unlink()
            build(project, args.out, isolation=not args.no_isolation)
    problems = []
    built: list[Path] = []
    for project in projects:
        sdist, wheel = artifacts(project, args.out)
        built += [sdist, wheel]
        problems += [f"{wheel.name}: {p}" for p in check_wheel(project, wheel)]
    problems += twine_check(built)
    for p in problems:
        sys.stderr.write(f"release: {p}\n")
    if problems:
        return 1
    for path in built:
        print(f"ok      {path}")
    return 0


def artifacts_glob(project: Project, out: Path) -> list[Path]:
    """Earlier builds of this distribution in ``out`` (any version): replaced, never mixed."""
    return [*out.glob(f"{project.wheel_stem}-*.whl"), *out.glob(f"{project.wheel_stem}-*.tar.gz")]


if __name__ == "__main__":
    sys.exit(main())
