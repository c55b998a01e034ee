"""The code examples of the documentation, read from its Markdown.

A page's fenced blocks are examples by their language: ``python``; ``console`` (a transcript:
``$ command`` lines, each followed by the output it must print); ``bash``/``sh``/``shell`` (a
script); ``json`` and ``toml`` (must parse). Two HTML comments steer them, on the line right
above a fence:

* ``<!-- no-run: why -->``: the block is checked but not run (Python compiles, every
  ``runanywhere`` command in it parses, the script's syntax is right). Kept few and counted.
* ``<!-- requires: DISTRIBUTION -->`` right above a fence: that block runs (and its commands are
  parsed) only where the distribution is installed; anywhere else on a page: all of the page's
  examples. Elsewhere they are skipped, saying so (written for a package that lands from
  another branch).
* ``<!-- output -->`` above a ``text`` block: what the Python block before it prints
  (``...`` matches anything, whitespace is compared loosely, as doctest's ELLIPSIS and
  NORMALIZE_WHITESPACE do).

Shell lines that install or build (``pip install``, ``apt-get install``, ``brew install``,
``make TARGET``) are checked instead of run: the pip extras and distributions they name exist in
this repository, the make target exists.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent.parent
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)$")
NO_RUN = re.compile(r"^\s*<!--\s*no-run:\s*(?P<why>.+?)\s*-->\s*$")
REQUIRES = re.compile(r"<!--\s*requires:\s*(?P<dist>[\w.-]+)\s*-->")
OUTPUT = re.compile(r"^\s*<!--\s*output\s*-->\s*$")
LANGS = {"python": "python", "py": "python", "console": "console", "bash": "shell",
         "sh": "shell", "shell": "shell", "json": "json", "toml": "toml"}


@dataclass
class Block:
    page: str        # path relative to the repository root
    line: int        # line of the opening fence (1-based)
    lang: str        # python, console, shell, json, toml, or the info string's first word
    code: str
    no_run: str | None = None  # the reason given, for a block that is checked but not run
    requires: str | None = None  # a distribution the block needs (``<!-- requires: ... -->``)
    output: str | None = None  # what a python block must print (the text block after it)

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def pages() -> list[Path]:
    """Every Markdown page of the site, and the README and map (the site includes the map)."""
    docs = sorted(p for p in (ROOT / "docs").rglob("*.md") if "hooks" not in p.parts)
    return [ROOT / "README.md", ROOT / "ARCHITECTURE.md", *docs]


def requirements(path: Path) -> list[str]:
    """The distributions all of a page's examples need (a ``<!-- requires: ... -->`` line that
    is not right above a fence)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [m["dist"] for i, line in enumerate(lines) if (m := REQUIRES.search(line))
            and not (i + 1 < len(lines) and FENCE.match(lines[i + 1]))]


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of one page, in order, with their markers applied."""
    lines = path.read_text(encoding="utf-8").splitlines()
    rel = str(path.relative_to(ROOT))
    out: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start, indent, fence = i, m["indent"], m["fence"]
        body: list[str] = []
        i += 1
        while i < len(lines) and not (lines[i].strip().startswith(fence)
                                       and lines[i].strip().strip(fence[0]) == ""):
            line = lines[i]
            body.append(line[len(indent):] if line.startswith(indent) else line.lstrip())
            i += 1
        i += 1  # the closing fence
        above = lines[start - 1] if start > 0 else ""
        info = m["info"].strip().split()
        word = info[0].lower() if info else ""
        code = "\n".join(body) + "\n"
        no_run = NO_RUN.match(above)
        requires = REQUIRES.search(above)
        if OUTPUT.match(above):
            if not out or out[-1].lang != "python":
                raise ValueError(f"{rel}:{start + 1}: <!-- output --> follows no python block")
            out[-1].output = code
            continue
        out.append(Block(rel, start + 1, LANGS.get(word, word), code,
                         no_run["why"] if no_run else None,
                         requires["dist"] if requires else None))
    return out


# -- shell ---------------------------------------------------------------------------------------

@dataclass
class Command:
    """One ``$`` line of a console block (continuations joined) and the output shown after it."""

    line: str
    output: str


def console_commands(code: str) -> list[Command]:
    out: list[Command] = []
    lines = code.splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].startswith("$ "):
            raise ValueError(f"a console block's output must follow a '$ ' line: {lines[i]!r}")
        cmd = lines[i][2:]
        while cmd.endswith("\\") and i + 1 < len(lines):
            i += 1
            cmd = cmd[:-1] + " " + lines[i].lstrip("> ")
        i += 1
        shown = []
        while i < len(lines) and not lines[i].startswith("$ "):
            shown.append(lines[i])
            i += 1
        out.append(Command(cmd, "\n".join(shown) + ("\n" if shown else "")))
    return out


def script_lines(code: str) -> list[str]:
    """A shell block's logical lines (continuations joined, comments and blanks dropped)."""
    out: list[str] = []
    joined = ""
    for raw in code.splitlines():
        line = raw.rstrip()
        if joined:
            line = joined + " " + line.lstrip()
            joined = ""
        if line.endswith("\\"):
            joined = line[:-1]
            continue
        if line.strip() and not line.lstrip().startswith("#"):
            out.append(line)
    return out


def runanywhere_argvs(line: str) -> list[list[str]]:
    """The argument lists of every ``runanywhere`` invocation in one shell line, those inside
    ``$(...)`` too (environment assignments before the command are dropped)."""
    found = []
    for inner in re.findall(r"\$\(([^()]*)\)", line):
        found += runanywhere_argvs(inner)
    line = re.sub(r"\$\([^()]*\)", "SUBST", line)
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|<>()")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    words = list(lexer)
    command: list[str] = []
    for word in [*words, ";"]:
        if word and set(word) <= set(";&|<>()"):
            while command and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", command[0]):
                command.pop(0)
            if command and command[0] == "runanywhere":
                found.append(command[1:])
            command = []
        elif command and command[-1] in (">", "2>"):
            command.pop()
        else:
            command.append(word)
    return found


def _extras_and_distributions() -> tuple[set[str], set[str]]:
    core = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = set(core.get("optional-dependencies", {}))
    dists = {core["name"]}
    for p in (ROOT / "packages").glob("*/pyproject.toml"):
        dists.add(tomllib.loads(p.read_text())["project"]["name"])
    return extras, dists


def _make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w-]*):", text, re.MULTILINE))


def install_line_problem(line: str) -> str | None:
    """For a line that installs or builds: what is wrong with it (None: fine). Raises
    ``ValueError`` for a line of another kind."""
    words = shlex.split(line, comments=True)
    while words and words[0] in ("sudo",):
        words.pop(0)
    if words[:2] in (["apt-get", "install"], ["brew", "install"], ["apt", "install"]):
        return None
    if words[:1] == ["make"]:
        missing = [t for t in words[1:] if not t.startswith("-") and t not in _make_targets()]
        return f"no make target {missing}" if missing else None
    if words[:2] == ["pip", "install"] or words[:4] == ["python", "-m", "pip", "install"]:
        extras, dists = _extras_and_distributions()
        problems = []
        for req in (w for w in words[2:] if not w.startswith("-")):
            local = re.fullmatch(r"(\.|\.?/?[\w.-]+(?:/[\w.-]+)+)(?:\[([\w,-]+)\])?", req)
            if local and (local[1] == "." or "/" in local[1]):  # a folder of this repository
                folder = ROOT / local[1]
                if not (folder / "pyproject.toml").is_file():
                    problems.append(f"no package in {local[1]!r}")
                elif local[1] == ".":
                    problems += [f"no extra {e!r}" for e in (local[2] or "").split(",")
                                 if e and e not in extras]
                continue
            m = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[([\w,-]+)\])?(?:[<>=!~].*)?", req)
            if not m:
                problems.append(f"cannot read {req!r}")
                continue
            name, wanted = m[1], (m[2] or "")
            if name.startswith("runanywhere") and name not in dists:
                problems.append(f"no distribution {name!r} in this repository")
            if name == "runanywhere":
                problems += [f"no extra {e!r}" for e in wanted.split(",") if e and e not in extras]
        return "; ".join(problems) or None
    raise ValueError(line)


def is_install_line(line: str) -> bool:
    try:
        install_line_problem(line)
    except ValueError:
        return False
    return True
