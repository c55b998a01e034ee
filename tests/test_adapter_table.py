"""The adapter table: the core ships no adapter, finds every one through entry points, and names
the package to install for the project's adapters that are missing."""

from __future__ import annotations

import importlib.metadata
import textwrap
from pathlib import Path

import pytest

import runanywhere
from runanywhere import adapters
from runanywhere.adapters import (
    BUILTIN_ADAPTERS,
    ENTRY_POINT_GROUP,
    KNOWN_ADAPTERS,
    PluginNotInstalledError,
    UnknownAdapterError,
    available_adapters,
    get_adapter,
)
from runanywhere.errors import RuntimeUnavailableError

#: What the core's adapters package may hold: the base types, events, the LLM/STT/TTS task
#: interfaces, audio helpers, the round-trip pipeline, the inventory; no adapter.
CORE_MODULES = {"__init__.py", "audio.py", "base.py", "fair_slots.py", "inventory.py",
                "languages.py", "llm.py", "roundtrip.py", "stt.py", "tts.py", "wer.py"}


def only_entry_points(monkeypatch: pytest.MonkeyPatch,
                      eps: list[importlib.metadata.EntryPoint]) -> None:
    """As if the installed adapter packages were exactly ``eps`` (other groups unchanged)."""
    real = importlib.metadata.entry_points
    group = importlib.metadata.EntryPoints(eps)
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda **kw: group if kw.get("group") == ENTRY_POINT_GROUP
                        else real(**kw))
    for name in ("SileroVADAdapter", "WhisperSTTAdapter"):  # drop what earlier tests resolved
        monkeypatch.delitem(vars(adapters), name, raising=False)


def test_the_core_holds_no_adapter() -> None:
    assert BUILTIN_ADAPTERS == {}
    folder = Path(adapters.__file__).parent
    assert {p.name for p in folder.glob("*.py")} <= CORE_MODULES
    dist = importlib.metadata.distribution("runanywhere")
    assert not [ep for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP]


def test_every_known_adapter_names_a_runanywhere_package() -> None:
    for name, (dist, extra) in KNOWN_ADAPTERS.items():
        assert dist.startswith("runanywhere-") and extra in ("vad", "stt", "tts", "llm"), name
    core_extras = importlib.metadata.metadata("runanywhere").get_all("Requires-Dist") or []
    for dist, extra in set(KNOWN_ADAPTERS.values()) - {("runanywhere-llm-openai", "llm")}:
        # each package is the core extra's one-word install (llm-openai: issue 24, not yet)
        assert any(r.startswith(f"{dist}<0.3,>=0.2") or r.startswith(f"{dist}>=0.2,<0.3")
                   for r in core_extras if f'extra == "{extra}"' in r), (dist, extra)


def test_a_missing_package_is_named_by_get_adapter_and_the_old_import_path(
        monkeypatch: pytest.MonkeyPatch) -> None:
    only_entry_points(monkeypatch, [])
    assert available_adapters() == []
    with pytest.raises(PluginNotInstalledError) as caught:
        get_adapter("silero-vad")
    message = str(caught.value)
    assert "pip install runanywhere-vad-silero" in message and "runanywhere[vad]" in message
    assert caught.value.distribution == "runanywhere-vad-silero"
    assert isinstance(caught.value, RuntimeUnavailableError)  # also an ImportError
    with pytest.raises(PluginNotInstalledError, match="pip install runanywhere-stt-whisper"):
        from runanywhere.adapters import WhisperSTTAdapter  # noqa: F401
    with pytest.raises(PluginNotInstalledError, match="runanywhere-tts-piper"):
        get_adapter("PIPER")  # names are case-insensitive
    with pytest.raises(UnknownAdapterError, match=r"unknown adapter 'nope' \(known adapters:"
                                                  r" none\)"):
        get_adapter("nope")


def test_unknown_names_list_the_installed_adapters() -> None:
    installed = available_adapters()
    assert {"silero-vad", "whisper", "speecht5", "system-tts"} <= set(installed)
    with pytest.raises(UnknownAdapterError, match=r"known adapters: .*silero-vad.*whisper"):
        get_adapter("no-such-adapter")
    with pytest.raises(UnknownAdapterError, match="did you mean 'silero-vad'"):
        get_adapter("silero_vad")


def test_the_moved_classes_resolve_to_their_packages() -> None:
    import runanywhere_stt_whisper
    import runanywhere_vad_silero

    assert adapters.SileroVADAdapter is runanywhere_vad_silero.SileroVADAdapter
    assert adapters.WhisperSTTAdapter is runanywhere_stt_whisper.WhisperSTTAdapter
    assert get_adapter("whisper") is runanywhere_stt_whisper.WhisperSTTAdapter
    with pytest.raises(AttributeError):
        _ = adapters.NoSuchAdapter


def test_a_third_party_adapter_plugs_in_through_entry_points(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "ra_tts_plugin.py").write_text(textwrap.dedent("""
        import numpy as np
        from runanywhere.adapters import BaseAdapter

        class BeepTTS(BaseAdapter):
            model_types = ("tts",)

            def synthesize(self, text):
                return np.zeros(len(text) * 100, np.float32), 16000
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    only_entry_points(monkeypatch, [
        importlib.metadata.EntryPoint("beep-tts", "ra_tts_plugin:BeepTTS", ENTRY_POINT_GROUP)])
    assert available_adapters() == ["beep-tts"]
    tts = adapters.create_adapter("beep-tts")
    audio, sr = tts.synthesize("hi")
    assert isinstance(tts, adapters.TTSAdapter) and audio.shape == (200,) and sr == 16000
    assert tts.model_types == ("tts",) and tts.formats == ()


def test_importing_the_adapter_table_stays_light() -> None:
    import subprocess
    import sys

    code = ("import sys, runanywhere.adapters as a; a.available_adapters();"
            " print(sorted(m for m in ('numpy', 'onnxruntime', 'runanywhere_vad_silero')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert out.strip() == "[]"
    assert runanywhere.__version__ == "0.2.0"


def test_asking_about_one_adapter_checks_only_its_package(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``run``, ``speak`` and ``transcribe`` ask whether one adapter's libraries are installed:
    the answer is the same as the whole table's row for it (and misses no missing library)."""
    from runanywhere.adapters.inventory import require_adapter

    info = tmp_path / "ra_broken_adapter-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ra-broken-adapter\n"
                                   "Version: 1.0\nRequires-Dist: ra-no-such-library-x\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n"
                                           "ra-broken = ra_broken_adapter:Adapter\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    table = adapters.ADAPTERS
    everything = table.describe()
    assert "ra-broken" in [i.name for i in everything]
    for name in [i.name for i in everything] + ["ra-nobody"]:
        assert table.describe(only=name) == [i for i in everything if i.name == name]
    assert table.describe(only="ra-broken")[0].missing == ("ra-no-such-library-x",)
    with pytest.raises(RuntimeUnavailableError, match=r"ra-no-such-library-x.*ra-broken-adapter"):
        require_adapter("ra-broken", "some-model")
