"""The command-line reference, generated from the argument parser at build time.

A page holding the line ``<!-- cli-reference -->`` gets it replaced by one section per command
of ``runanywhere.cli.main.build_parser()``: its synopsis, description, arguments and options
(with their choices and defaults). The page can therefore never disagree with ``--help``.
``render()`` is also what ``tests/test_docs_site.py`` checks.
"""

from __future__ import annotations

import argparse
from typing import Any

MARKER = "<!-- cli-reference -->"
GLOBAL_GROUP = "global options"


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    out: list[tuple[str, argparse.ArgumentParser]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            out += list(action.choices.items())
    return out


def _is_global(parser: argparse.ArgumentParser, action: argparse.Action) -> bool:
    return any(action in g._group_actions for g in parser._action_groups
               if g.title == GLOBAL_GROUP)


def _own_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions
            if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction,
                                  argparse._VersionAction))
            and not _is_global(parser, a)]


def _synopsis(parser: argparse.ArgumentParser, prog: str) -> str:
    formatter = argparse.HelpFormatter(prog, width=96)
    actions = [a for a in parser._actions
               if not _is_global(parser, a) and not isinstance(a, argparse._HelpAction)]
    formatter.add_usage(None, actions, [], prefix="")
    return formatter.format_help().strip()


def _text(text: str | None) -> str:
    """Help text as Markdown that renders it as written (``[@REV]`` is no link)."""
    text = text or ""
    for c in "\\[]*_":
        text = text.replace(c, "\\" + c)
    return text.replace("<", "&lt;")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _name(action: argparse.Action) -> str:
    if not action.option_strings:
        return _cell(f"`{action.metavar or action.dest}`")
    spelled = ", ".join(f"`{o}`" for o in action.option_strings)
    if action.nargs == 0:
        return spelled
    metavar = action.metavar or (action.dest.upper() if not action.choices else None)
    return _cell(spelled + (f" `{metavar}`" if metavar else ""))


def _meaning(action: argparse.Action) -> str:
    parts = [_text(action.help)]
    if action.choices and not isinstance(action.choices, dict):
        parts.append("one of " + ", ".join(f"`{c}`" for c in action.choices))
    default = action.default
    if (action.option_strings and action.nargs != 0 and default not in (None, [], "")
            and default is not argparse.SUPPRESS and "default" not in (action.help or "")):
        parts.append(f"default `{default}`")
    if isinstance(action, argparse._AppendAction) and "repeatable" not in (action.help or ""):
        parts.append("repeatable")
    return _cell("; ".join(p for p in parts if p))


def _table(actions: list[argparse.Action]) -> list[str]:
    if not actions:
        return []
    rows = ["| argument | meaning |", "|---|---|"]
    rows += [f"| {_name(a)} | {_meaning(a)} |" for a in actions]
    return [*rows, ""]


def _sentence(text: str | None) -> str:
    text = (text or "").strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") or not text else ".")


def _command(parser: argparse.ArgumentParser, words: list[str], level: int) -> list[str]:
    prog = "runanywhere " + " ".join(words)
    out = [f"{'#' * level} `{prog}`", "", _text(_sentence(parser.description)), "",
           "```text", _synopsis(parser, prog), "```", ""]
    out += _table(_own_actions(parser))
    for name, sub in _subcommands(parser):
        out += _command(sub, [*words, name], level + 1)
    return out


def render(parser: argparse.ArgumentParser) -> str:
    """The whole reference as Markdown: the global options, then every command."""
    globals_ = [a for g in parser._action_groups if g.title == GLOBAL_GROUP
                for a in g._group_actions]
    out = ["## Global options", "",
           "Accepted before or after the command (`runanywhere --home D list` and"
           " `runanywhere list --home D` are the same).", "", *_table(globals_),
           "`runanywhere --version` prints the version.", ""]
    for name, sub in _subcommands(parser):
        out += _command(sub, [name], 2)
    return "\n".join(out)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    if MARKER not in markdown:
        return markdown
    from runanywhere.cli.main import build_parser

    return markdown.replace(MARKER, render(build_parser()))
