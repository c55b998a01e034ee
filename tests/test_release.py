"""scripts/release.py: a good wheel passes, and each thing a wheel must (not) hold is caught.

The wheels are built for real (``python -m build --no-isolation``); the bad ones are copies
with one entry changed. The full run over every package, in fresh venvs, is
scripts/check_packages.py (``make test`` runs it).
"""

from __future__ import annotations

import re
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import release  # noqa: E402

Edit = Callable[[str, bytes], bytes | None]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, release.Project]]:
    out = tmp_path_factory.mktemp("dist")
    projects = {p.name: p for p in release.all_projects()}
    for name in ("runanywhere", "runanywhere-vad-silero"):
        release.build(projects[name], out, isolation=False)
    return out, projects


def rewrite(wheel: Path, target: Path, edit: Edit, add: dict[str, bytes] | None = None) -> Path:
    """A copy of ``wheel`` with each member passed through ``edit`` (None drops it)."""
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(target, "w") as dst:
        for name in src.namelist():
            data = edit(name, src.read(name))
            if data is not None:
                dst.writestr(name, data)
        for name, data in (add or {}).items():
            dst.writestr(name, data)
    return target


def test_the_built_wheels_pass(built: tuple[Path, dict[str, release.Project]]) -> None:
    out, projects = built
    for name in ("runanywhere", "runanywhere-vad-silero"):
        sdist, wheel = release.artifacts(projects[name], out)
        assert release.check_wheel(projects[name], wheel) == []
        assert release.twine_check([sdist, wheel]) == []


@pytest.mark.parametrize(("case", "edit", "add", "problem"), [
    ("no py.typed", lambda n, d: None if n.endswith("py.typed") else d, None,
     "no runanywhere_vad_silero/py.typed"),
    ("a test inside", lambda n, d: d, {"runanywhere_vad_silero/tests/test_x.py": b"x = 1\n"},
     "files from tests in the wheel"),
    ("a conftest", lambda n, d: d, {"conftest.py": b""}, "files from tests in the wheel"),
    ("a lost module", lambda n, d: None if n.endswith("/silero.py") else d, None,
     "modules missing from the wheel: runanywhere_vad_silero/silero.py"),
    ("an unpinned core", lambda n, d: d.replace(b"Requires-Dist: runanywhere<0.3,>=0.2",
                                                b"Requires-Dist: runanywhere>=0.2")
     if n.endswith("METADATA") else d, None, "must pin runanywhere>=0.2,<0.3"),
    ("a lost entry point", lambda n, d: b"" if n.endswith("entry_points.txt") else d, None,
     "entry points {} are not the pyproject's"),
])
def test_each_fault_is_named(built: tuple[Path, dict[str, release.Project]], tmp_path: Path,
                             case: str, edit: Edit, add: dict[str, bytes] | None,
                             problem: str) -> None:
    out, projects = built
    project = projects["runanywhere-vad-silero"]
    _, wheel = release.artifacts(project, out)
    bad = rewrite(wheel, tmp_path / wheel.name, edit, add)
    problems = release.check_wheel(project, bad)
    assert any(problem in p for p in problems), (case, problems)


def test_the_core_must_not_register_adapters(built: tuple[Path, dict[str, release.Project]],
                                             tmp_path: Path) -> None:
    out, projects = built
    core = projects["runanywhere"]
    _, wheel = release.artifacts(core, out)

    def edit(name: str, data: bytes) -> bytes:
        if name.endswith("entry_points.txt"):
            return data + b"\n[runanywhere.adapters]\nsilero-vad = x:Y\n"
        if name.endswith("METADATA"):  # an extra that pulls a package without the pin
            return re.sub(rb"runanywhere-vad-silero<0.3,>=0.2", b"runanywhere-vad-silero", data)
        return data

    problems = release.check_wheel(core, rewrite(wheel, tmp_path / wheel.name, edit))
    assert any("every adapter belongs in a package" in p for p in problems)
    assert any("extra [vad] must pull adapter packages pinned" in p for p in problems)


def test_a_release_tag_builds_its_distribution_at_its_version(tmp_path: Path) -> None:
    import subprocess

    script = [sys.executable, str(ROOT / "scripts" / "release.py"), "--out", str(tmp_path)]
    wrong = subprocess.run([*script, "--tag", "runanywhere-vad-silero==9.9.9"],
                           capture_output=True, text=True, timeout=300)
    assert wrong.returncode != 0 and "__version__ is 0.2.0, not 9.9.9" in wrong.stderr
    bad = subprocess.run([*script, "--tag", "runanywhere-vad-silero-0.2.0"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "is not NAME==VERSION" in bad.stderr
    assert list(tmp_path.iterdir()) == []  # nothing built for a bad tag
    # The workflow's own command: isolated build environments (setuptools from the index).
    done = subprocess.run([*script, "--tag", "runanywhere-tts-system==0.2.0"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "runanywhere_tts_system-0.2.0-py3-none-any.whl", "runanywhere_tts_system-0.2.0.tar.gz"]


def test_the_release_workflow_runs_the_checked_scripts_then_publishes() -> None:
    import yaml

    flow = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yml").read_text())
    tags = flow[True]["push"]["tags"]  # YAML 1.1 reads the key "on" as True
    assert tags == ["runanywhere==*", "runanywhere-*==*"]
    jobs = flow["jobs"]
    runs = {name: " ".join(step.get("run", "") for step in job["steps"])
            for name, job in jobs.items()}
    assert 'scripts/release.py --tag "${{ github.ref_name }}" --out dist' in runs["build"]
    assert "scripts/check_packages.py --only" in runs["test"] and "--dist dist" in runs["test"]
    assert jobs["test"]["needs"] == "build" and jobs["publish"]["needs"] == "test"
    publish = jobs["publish"]
    assert publish["permissions"] == {"id-token": "write"}
    assert [s["uses"] for s in publish["steps"]][-1] == "pypa/gh-action-pypi-publish@release/v1"
    assert flow["permissions"] == {"contents": "read"}  # only publishing gets a token
    # the options the workflow passes exist (a renamed option would break only the release)
    for script, options in (("release.py", ["--tag", "--out"]),
                            ("check_packages.py", ["--only", "--dist", "--core-from-index"])):
        import subprocess

        help_text = subprocess.run([sys.executable, str(ROOT / "scripts" / script), "--help"],
                                   capture_output=True, text=True, timeout=60).stdout
        assert all(o in help_text for o in options), (script, help_text)
