"""espeak-ng through ctypes: text -> clauses of IPA phonemes, each with the punctuation ending it.

Piper's own code (``espeakbridge.c`` in piper-tts) calls ``espeak_TextToPhonemesWithTerminator``
in a loop: one clause per call, with the clause's terminator flags (period, question, comma, ...
and whether it ends a sentence). We call the same libespeak-ng functions the same way, through
ctypes on the system's library (``libespeak-ng.so.1``, Debian/Ubuntu ``libespeak-ng1``), so no
GPL Python package is needed at run time.

``espeak_TextToPhonemesWithTerminator`` is in rhasspy's espeak-ng fork (the one piper-tts
bundles) and in upstream espeak-ng after 1.52.0; Debian 12's 1.51 has only
``espeak_TextToPhonemes``, which drops the terminator. There the terminator is read back from the
text the call consumed (:func:`infer_terminator`), following ``ReadClause`` in espeak-ng 1.51's
``readclause.c``; the tests check that reading against the real terminator on a library that
has both functions (the one inside piper-tts's wheel).

libespeak-ng keeps global state (the voice, a one-character lookahead between clauses), so every
call into it holds one lock per loaded library.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import threading
import unicodedata
from dataclasses import dataclass

from runanywhere.errors import RuntimeUnavailableError, SynthesisError

from .clause_chars import CLAUSE_CHARS

# speak_lib.h
_AUDIO_OUTPUT_SYNCHRONOUS = 0x02
_INITIALIZE_DONT_EXIT = 0x8000  # return an error instead of exit(1) when the data is missing
_CHARS_AUTO = 0  # UTF-8, falling back to ISO-8859-1 for invalid bytes (what Piper passes)
_PHONEMES_IPA = 0x02

# translate.h: a clause's terminator flags
_INTONATION_FULL_STOP = 0x00000000
_INTONATION_COMMA = 0x00001000
_INTONATION_QUESTION = 0x00002000
_INTONATION_EXCLAMATION = 0x00003000
_TYPE_CLAUSE = 0x00040000
_TYPE_SENTENCE = 0x00080000
_PERIOD = 40 | _INTONATION_FULL_STOP | _TYPE_SENTENCE
_COMMA = 20 | _INTONATION_COMMA | _TYPE_CLAUSE
_QUESTION = 40 | _INTONATION_QUESTION | _TYPE_SENTENCE
_EXCLAMATION = 45 | _INTONATION_EXCLAMATION | _TYPE_SENTENCE
_COLON = 30 | _INTONATION_FULL_STOP | _TYPE_CLAUSE
_SEMICOLON = 30 | _INTONATION_COMMA | _TYPE_CLAUSE
#: The terminators Piper keeps as a "phoneme" (others read as "").
_TERMINATORS = {_PERIOD: ".", _QUESTION: "?", _EXCLAMATION: "!", _COMMA: ",", _COLON: ":",
                _SEMICOLON: ";"}

LIBRARY_NAMES = ("libespeak-ng.so.1", "libespeak-ng.so", "libespeak-ng.1.dylib",
                 "libespeak-ng.dylib", "libespeak-ng.dll")
INSTALL_HINT = ("install espeak-ng's library (Debian/Ubuntu: apt-get install libespeak-ng1, or"
                " espeak-ng; Fedora: espeak-ng; macOS: brew install espeak-ng)")


@dataclass(frozen=True, slots=True)
class Clause:
    """One clause as espeak-ng read it.

    ``phonemes`` is IPA; ``terminator`` is the punctuation Piper keeps for it (``. ? ! , : ;``
    or ``""``); ``end`` is where the clause's text ends in the source (a character offset).
    """

    phonemes: str
    terminator: str
    end_of_sentence: bool
    end: int


def terminator_from_flags(flags: int) -> tuple[str, bool]:
    """(punctuation, ends a sentence) from a clause's terminator flags, as piper-tts reads them."""
    flags &= 0x000FFFFF
    return _TERMINATORS.get(flags, ""), bool(flags & _TYPE_SENTENCE)


# -- the terminator from the consumed text (libraries without ...WithTerminator) ------------------

#: What ReadClause accepts right after clause punctuation besides white space (``IsBracket``).
_BRACKETS = frozenset("()[]{}<>\"'`\u00ab\u00bb\u300a\u300b") | frozenset(
    chr(c) for c in range(0x2014, 0x2020))


def _punctuation_end(body: str, lookahead: str) -> tuple[str, bool] | None:
    """How Piper reads a clause whose text is ``body`` if punctuation ended it, else None.

    ReadClause ends a clause at clause punctuation followed by white space, a bracket or quote,
    ``?`` or the end of the text (or at once for marks that need no space after them); the
    first mark of a run (``?!``, ``.,``) decides; three dots or more are an ellipsis; a blank
    line after the mark makes the clause end a paragraph. On the same line, a dot before a
    lower-case word is an abbreviation and a mark before any letter or digit is no end.
    """
    stripped = body.rstrip()
    trailing = body[len(stripped):]
    start = len(stripped)
    while start > 0 and stripped[start - 1] in CLAUSE_CHARS:
        start -= 1
    run = stripped[start:]
    if not run:
        return None
    first = "\u2026" if run.startswith("...") else run[0]
    mark, sentence, needs_no_space = CLAUSE_CHARS[first]
    after = trailing[:1] or lookahead
    if not (needs_no_space or not after or after.isspace() or after in _BRACKETS
            or after == "?"):
        return None
    newlines = trailing.count("\n")
    if newlines == 0 and (not any(c.isalnum() for c in stripped[:start])
                          or (first == "." and lookahead.islower())):
        return None
    if newlines >= 2:
        return "", True
    return mark, sentence


def infer_terminator(consumed: str, at_end: bool, carried: str = "") -> tuple[str, bool]:
    """(punctuation, ends a sentence) of a clause from the text one call consumed.

    ``consumed`` is the text between the pointer before and after the call; ``carried`` is the
    previous call's lookahead, the clause's first character. Unless the call reached the end
    of the text, the last character of ``consumed`` is the lookahead espeak-ng read past the
    clause (it keeps it for the next call); at the end it may be one too (``stop!"``). Besides
    punctuation (:func:`_punctuation_end`) a clause ends at a blank line or the end of the text
    ("", True), or when it grew too long to translate at once ("", False).
    """
    text = carried + consumed
    if not at_end:
        body, lookahead = text[:-1], text[-1:]
        found = _punctuation_end(body, lookahead)
        if found is not None:
            return found
        paragraph = body[len(body.rstrip()):].count("\n") >= 2
        return ("", True) if paragraph else ("", False)
    found = _punctuation_end(text, "")
    if found is None and text:
        found = _punctuation_end(text[:-1], text[-1])
    return found if found is not None else ("", True)


# -- the library ----------------------------------------------------------------------------------


def find_library(name: str | os.PathLike[str] | None = None) -> str:
    """The libespeak-ng to load: ``name`` (a path or a soname), else the system's."""
    return os.fspath(name) if name is not None else _system_library()


@functools.cache
def _system_library() -> str:
    # find_library asks ldconfig (a subprocess): once per process is enough
    return ctypes.util.find_library("espeak-ng") or LIBRARY_NAMES[0]


class Espeak:
    """One loaded libespeak-ng (initialized once, with ``data``: its espeak-ng-data folder)."""

    def __init__(self, library: str, data: str | None = None) -> None:
        self.library = library
        self.data = data
        try:
            lib = ctypes.CDLL(library)
            lib.espeak_Initialize  # noqa: B018 - a library without it is not espeak-ng
            lib.espeak_TextToPhonemes  # noqa: B018
        except (OSError, AttributeError) as e:
            raise RuntimeUnavailableError(
                f"Piper needs espeak-ng for its phonemes, and {library} could not be loaded"
                f" as libespeak-ng ({e}): {INSTALL_HINT}") from e
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p,
                                          ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_Info.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
        lib.espeak_Info.restype = ctypes.c_char_p
        self._with_terminator = getattr(lib, "espeak_TextToPhonemesWithTerminator", None)
        if self._with_terminator is not None:
            self._with_terminator.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int,
                                              ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
            self._with_terminator.restype = ctypes.c_char_p
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int,
                                              ctypes.c_int]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        self._lib = lib
        self.lock = threading.Lock()
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0,
                                     data.encode() if data else None, _INITIALIZE_DONT_EXIT)
        if rate <= 0:
            where = data or os.environ.get("ESPEAK_DATA_PATH") or "its default folder"
            raise RuntimeUnavailableError(
                f"espeak-ng ({library}) could not start: its data (espeak-ng-data) is missing"
                f" or of another version in {where}: {INSTALL_HINT}")
        self.version = (lib.espeak_Info(None) or b"?").decode("ascii", "replace")
        self._voice: str | None = None

    @property
    def reports_terminators(self) -> bool:
        """True when the library says which punctuation ended each clause (else inferred)."""
        return self._with_terminator is not None

    def clauses(self, text: str, voice: str, *, infer: bool = False) -> list[Clause]:
        """``text`` as espeak-ng's clauses in ``voice``.

        ``infer``: read the terminators from the consumed text even when the library reports
        them (the tests compare the two). The text goes in with a space after it, so espeak-ng
        never ends it holding back a lookahead character that would start the next text
        (piper-tts's texts do carry one over: a text after "... 3.5." can begin with "dot").
        """
        data = text.encode("utf-8", "replace") + b" "
        if b"\0" in data:
            raise SynthesisError("text for espeak-ng holds a NUL character")
        use_flags = self._with_terminator is not None and not infer
        out: list[Clause] = []
        with self.lock:
            self._set_voice(voice)
            buf = ctypes.create_string_buffer(data)
            base = ctypes.addressof(buf)
            pointer = ctypes.c_void_p(base)
            flags = ctypes.c_int(0)
            chars = offset = 0
            carried = ""  # the lookahead the last call kept: the next clause's first character
            # Each call consumes at least one character: more calls than bytes is a bug.
            for _ in range(len(data) + 1):
                if pointer.value is None:
                    break
                if self._with_terminator is not None and use_flags:
                    raw = self._with_terminator(ctypes.byref(pointer), _CHARS_AUTO,
                                                _PHONEMES_IPA, ctypes.byref(flags))
                else:
                    raw = self._lib.espeak_TextToPhonemes(ctypes.byref(pointer), _CHARS_AUTO,
                                                          _PHONEMES_IPA)
                at_end = pointer.value is None
                new_offset = len(data) if at_end else (pointer.value or base) - base
                if raw is None or (new_offset <= offset and not at_end):
                    raise SynthesisError(f"espeak-ng could not read the text {text[:60]!r}")
                consumed = data[offset:new_offset].decode("utf-8", "replace")
                chars += len(consumed)
                offset = new_offset
                if use_flags:
                    terminator, sentence = terminator_from_flags(flags.value)
                else:
                    terminator, sentence = infer_terminator(consumed, at_end, carried)
                carried = "" if at_end else consumed[-1:]
                end = min(chars - (0 if at_end else 1), len(text))
                out.append(Clause(raw.decode("utf-8", "replace"), terminator, sentence, end))
            else:
                raise SynthesisError(f"espeak-ng did not get through the text {text[:60]!r}")
        return out

    def _set_voice(self, voice: str) -> None:
        if voice == self._voice:
            return
        if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise SynthesisError(f"espeak-ng has no voice {voice!r} (the Piper voice's"
                                 f" espeak.voice); `espeak-ng --voices` lists them")
        self._voice = voice


_LOADED: dict[str, Espeak] = {}
_LOADED_LOCK = threading.Lock()


def get_espeak(library: str | os.PathLike[str] | None = None,
               data: str | os.PathLike[str] | None = None) -> Espeak:
    """The process's :class:`Espeak` for ``library`` (loaded and initialized on first use).

    A library is initialized once: asking for it again with another ``data`` folder is an
    error (espeak-ng has one data folder per process).
    """
    name = find_library(library)
    folder = os.fspath(data) if data is not None else None
    with _LOADED_LOCK:
        found = _LOADED.get(name)
        if found is None:
            found = _LOADED[name] = Espeak(name, folder)
        elif folder is not None and found.data != folder:
            raise SynthesisError(f"espeak-ng ({name}) already runs with its data in"
                                 f" {found.data or 'its default folder'}, not {folder}")
        return found


def clean_text(text: str) -> str:
    """``text`` safe to hand to espeak-ng: control characters become spaces.

    C0/C1 controls other than tab, newline and carriage return would reach espeak-ng's parser,
    where U+0001 starts an embedded command (a voice change, say) and NUL ends the string.
    """
    return "".join(" " if unicodedata.category(c) == "Cc" and c not in "\t\n\r" else c
                   for c in text)
