"""The documentation site builds with ``mkdocs build --strict``, offline, and says what the code
says: the command-line reference holds every command and option of the parser, the API
reference every public name.

The build runs with the proxy variables pointing at a closed port on 127.0.0.1, so a plugin that
fetched anything (fonts, a social card, an inventory) would fail it.
"""

from __future__ import annotations

import argparse
import html as html_module
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import runanywhere
from harness.net import free_port
from runanywhere.cli.main import build_parser

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    dead = f"http://127.0.0.1:{free_port()}"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "http_proxy": dead, "https_proxy": dead,
           "HTTP_PROXY": dead, "HTTPS_PROXY": dead, "NO_PROXY": ""}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                           str(out)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return out


def _text(html: str) -> str:
    return html_module.unescape(re.sub(r"<[^>]+>", "", html))


def test_no_page_loads_anything_from_another_host(site: Path) -> None:
    for page in site.rglob("*.html"):
        html = page.read_text()
        found = re.findall(r'<(?:link|script|img)[^>]+(?:href|src)="(https?://[^"]+)"', html)
        assert not found, f"{page.relative_to(site)} loads {found}"


def _commands(parser: argparse.ArgumentParser, words: list[str]
              ) -> list[tuple[list[str], argparse.ArgumentParser]]:
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += [([*words, name], sub), *_commands(sub, [*words, name])]
    return out


def test_the_cli_reference_has_every_command_and_option(site: Path) -> None:
    text = _text((site / "reference" / "cli" / "index.html").read_text())
    commands = _commands(build_parser(), [])
    assert len(commands) > 15
    missing = []
    for words, parser in commands:
        if "runanywhere " + " ".join(words) not in text:
            missing.append(" ".join(words))
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            for option in action.option_strings:
                if option not in text:
                    missing.append(f"{' '.join(words)} {option}")
            if action.help and action.help != argparse.SUPPRESS and action.help not in text:
                missing.append(f"{' '.join(words)}: help {action.help!r}")
    assert not missing, missing


@pytest.mark.parametrize(("page", "names"), [
    ("runanywhere", [n for n in runanywhere.__all__ if n not in ("__version__", "Settings",
                                                                   "DownloadProgress", "Stage")]),
    ("settings", ["Settings"]),
    ("progress", ["DownloadProgress", "Stage"]),
    ("adapters", ["BaseAdapter", "Transcription", "TranscriptSegment", "get_adapter"]),
    ("errors", ["ModelError", "IntegrityError", "PluginNotInstalledError"]),
    ("runtimes", ["get_runtime", "BuiltinRuntime"]),
])
def test_the_api_reference_documents_the_public_names(site: Path, page: str,
                                                      names: list[str]) -> None:
    html = (site / "reference" / "api" / page / "index.html").read_text()
    missing = [n for n in names if not re.search(rf'id="[\w.]*\.{re.escape(n)}"', html)]
    assert not missing, f"reference/api/{page} lacks {missing}"


def test_each_adapter_package_has_its_reference(site: Path) -> None:
    html = (site / "reference" / "packages" / "index.html").read_text()
    for cls in ("SileroVADAdapter", "FasterWhisperSTTAdapter", "WhisperSTTAdapter",
                "PiperTTSAdapter", "SpeechT5TTSAdapter", "SystemTTSAdapter",
                "OpenAILLMAdapter", "OpenAISTTAdapter", "OpenAITTSAdapter"):
        assert re.search(rf'id="[\w.]*\.{cls}"', html), cls


def test_every_page_is_in_the_navigation(site: Path) -> None:
    pages = {p.relative_to(ROOT / "docs").with_suffix("").as_posix()
             for p in (ROOT / "docs").rglob("*.md") if "hooks" not in p.parts}
    home = (site / "index.html").read_text()
    missing = [p for p in pages if p != "index" and f'href="{p}/"' not in home]
    assert not missing, missing


def test_the_readme_and_the_map_link_to_files_that_exist() -> None:
    for page in (ROOT / "README.md", ROOT / "ARCHITECTURE.md", ROOT / "SECURITY.md"):
        targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text())
        missing = [t for t in targets if "://" not in t and not (page.parent / t).exists()]
        assert not missing, f"{page.name} links to missing files: {missing}"
