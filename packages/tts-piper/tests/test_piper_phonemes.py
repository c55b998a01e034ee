"""Text -> Piper's phonemes and ids on the system's espeak-ng (libespeak-ng through ctypes).

How the pieces behave on their own: the clause terminators read back from the consumed text
(what Debian's espeak-ng 1.51 does not report), Piper's sentence and id building, raw phoneme
blocks, vowel clusters, the length cap, and text that must never reach espeak-ng's parser.
Agreement with piper-tts itself is in test_piper_parity.py.
"""

from __future__ import annotations

import threading

import pytest

# Fixtures (see piper_fixtures.py): imported, so pytest finds them in this module.
from piper_fixtures import (
    builtin_voice_entry,
    isolated_env,
    joe_dir,
    joe_onnx,
    registry,
    voice_catalog,
    voice_origin,
)

from runanywhere.errors import RuntimeUnavailableError, SynthesisError
from runanywhere_tts_piper.espeak import (
    Clause,
    clean_text,
    get_espeak,
    infer_terminator,
    terminator_from_flags,
)
from runanywhere_tts_piper.phonemes import (
    clause_phonemes,
    merge_clusters,
    phoneme_ids,
    phonemize,
)

ID_MAP = {"_": [0], "^": [1], "$": [2], " ": [3], "a": [4], "b": [5], ",": [6], "ab": [7, 8]}


@pytest.fixture(scope="module")
def espeak():  # type: ignore[no-untyped-def]
    return get_espeak()


# -- ids ------------------------------------------------------------------------------------------


def test_ids_are_bos_pad_each_phoneme_and_pad_then_eos() -> None:
    assert phoneme_ids(["a", "b"], ID_MAP) == [1, 0, 4, 0, 5, 0, 2]
    assert phoneme_ids([], ID_MAP) == [1, 0, 2]
    # a phoneme with several ids keeps them all; one the map lacks is left out
    assert phoneme_ids(["ab", "?", "a"], ID_MAP) == [1, 0, 7, 8, 0, 4, 0, 2]


def test_clause_phonemes_keep_punctuation_and_decompose_accents() -> None:
    assert clause_phonemes(Clause("ab", ",", False, 2)) == ["a", "b", ",", " "]
    assert clause_phonemes(Clause("ab", ".", True, 2)) == ["a", "b", "."]
    assert clause_phonemes(Clause("ab", "", True, 2)) == ["a", "b"]
    # a language switch mark is dropped; an accented letter is two code points (NFD)
    assert clause_phonemes(Clause("(fr)kafe\u0301(en)", ":", False, 4)) == [
        "k", "a", "f", "e", "\u0301", ":", " "]
    assert clause_phonemes(Clause("\u00e9", "", True, 1)) == ["e", "\u0301"]


def test_vowel_clusters_merge_longest_first() -> None:
    clusters = [("a", "ɪ"), ("a", "ɪ", "ə")]
    assert merge_clusters(list("baɪəaɪx"), clusters) == ["b", "aɪə", "aɪ", "x"]
    assert merge_clusters(list("ab"), []) == ["a", "b"]


# -- clause terminators --------------------------------------------------------------------------


@pytest.mark.parametrize(("flags", "expected"), [
    (40 | 0x80000, (".", True)), (40 | 0x2000 | 0x80000, ("?", True)),
    (45 | 0x3000 | 0x80000, ("!", True)), (20 | 0x1000 | 0x40000, (",", False)),
    (30 | 0x40000, (":", False)), (30 | 0x1000 | 0x40000, (";", False)),
    (40 | 0x80000 | 0x400000, (".", True)),  # "dot after last word": a flag piper-tts masks
    (40 | 0x80000 | 0x10000, ("", True)),  # the end of the text
    (70 | 0x80000, ("", True)),  # a paragraph
    (0x4000, ("", False)),  # no punctuation: a clause cut for length
])
def test_terminator_flags_read_as_piper_reads_them(flags: int, expected: tuple[str, bool]
                                                   ) -> None:
    assert terminator_from_flags(flags) == expected


@pytest.mark.parametrize(("consumed", "at_end", "carried", "expected"), [
    ("Hello, w", False, "", (",", False)),  # the clause, its mark, the lookahead
    ("orld. H", False, "w", (".", True)),
    ("ow are you?", True, "H", ("?", True)),
    ("what?! N", False, "", ("?", True)),  # a run of marks: the first decides
    ("wait... w", False, "", ("", False)),  # three dots: an ellipsis
    ("two\n\np", False, "", ("", True)),  # a blank line: a paragraph
    ("two.\n\nN", False, "", ("", True)),  # a mark and a blank line: a paragraph too
    ("stop!\"", True, "", ("!", True)),  # the closing quote was the lookahead
    ("stop.X", True, "", ("", True)),  # a dot inside a word: the end of the text decides
    ("e.g. x", True, "", ("", True)),  # a dot before a lower-case word: no end
    (" , 2", False, "1", (",", False)),  # the carried first character counts as a digit
    (" ; c", False, "", ("", False)),  # a mark before any letter or digit: no end
    ("word — n", False, "", (";", False)),  # an em dash is a semicolon to espeak-ng
    ("maybe", True, "", ("", True)),
    ("and on and on", False, "", ("", False)),  # cut for length
    ("中文。测", False, "", ("", True)),  # marks that need no space after them
])
def test_terminator_from_the_consumed_text(consumed: str, at_end: bool, carried: str,
                                           expected: tuple[str, bool]) -> None:
    assert infer_terminator(consumed, at_end, carried) == expected


def test_system_espeak_clauses(espeak) -> None:  # type: ignore[no-untyped-def]
    text = "Hello, world. How are you? Fine; thanks!"
    clauses = espeak.clauses(text, "en-us")
    assert [(c.terminator, c.end_of_sentence) for c in clauses] == [
        (",", False), (".", True), ("?", True), (";", False), ("!", True)]
    assert [text[:c.end].split()[-1] for c in clauses] == [
        "Hello,", "world.", "you?", "Fine;", "thanks!"]
    assert clauses[0].phonemes.startswith("h") and "ˈ" in clauses[0].phonemes
    # the library's own terminators, where it has them, agree with the inferred ones
    if espeak.reports_terminators:
        assert espeak.clauses(text, "en-us", infer=True) == clauses


def test_sentences_follow_espeak_and_carry_their_text(espeak) -> None:  # type: ignore[no-untyped-def]
    text = "Dr. Smith paid 42 dollars. Really?\n\nNew paragraph without an end"
    sentences = phonemize(text, espeak, "en-us")
    assert [s.text for s in sentences] == [
        "Dr.", "Smith paid 42 dollars.", "Really?", "New paragraph without an end"]
    assert sentences[1].phonemes[-1] == "."
    # a blank line after "?" makes the clause end a paragraph: Piper keeps no mark for it
    assert sentences[2].phonemes[-1] not in "?."
    assert phonemize("Really? Yes.", espeak, "en-us")[0].phonemes[-1] == "?"
    assert " " in sentences[1].phonemes and "," not in sentences[1].phonemes
    # commas inside a sentence are phonemes, with a space after them
    joined = "".join(phonemize("One, two.", espeak, "en-us")[0].phonemes)
    assert ", " in joined and joined.endswith(".")


def test_raw_phoneme_blocks(espeak) -> None:  # type: ignore[no-untyped-def]
    sentences = phonemize("Say [[ hɛloʊ ]] to me. Bye.", espeak, "en-us")
    assert len(sentences) == 2
    first = "".join(sentences[0].phonemes)
    assert " hɛloʊ " in first and first.endswith(".")
    assert sentences[0].text == "Say [[ hɛloʊ ]] to me."
    only = phonemize("[[abc]]", espeak, "en-us")
    assert [s.phonemes for s in only] == [["a", "b", "c"]]


def test_text_phoneme_voices_skip_espeak() -> None:
    sentences = phonemize("Ab\u00e9. C", None, "", phoneme_type="text")
    assert [s.phonemes for s in sentences] == [["A", "b", "e", "\u0301", ".", " ", "C"]]
    assert phonemize("", None, "", phoneme_type="text") == []


def test_long_sentences_are_cut_at_clause_boundaries(espeak) -> None:  # type: ignore[no-untyped-def]
    text = ", ".join(["the quick brown fox jumps over the lazy dog"] * 12) + "."
    whole = phonemize(text, espeak, "en-us")
    cut = phonemize(text, espeak, "en-us", max_phonemes=150)
    assert len(whole) == 1 and len(cut) > 3
    assert all(len(s.phonemes) <= 150 for s in cut)
    assert [p for s in cut for p in s.phonemes] == whole[0].phonemes  # nothing lost
    assert " ".join(s.text for s in cut) == " ".join(text.split())
    # no punctuation at all: espeak-ng's own cut of a long clause bounds each piece
    words = " ".join(["word"] * 2000)
    pieces = phonemize(words, espeak, "en-us", max_phonemes=500)
    assert len(pieces) > 4 and max(len(s.phonemes) for s in pieces) < 1500


def test_control_characters_never_reach_espeak(espeak) -> None:  # type: ignore[no-untyped-def]
    assert clean_text("a\x00b\x01Vde\tc\r\n\x7f\x9b") == "a b Vde\tc\r\n  "
    plain = phonemize(clean_text("Hello there."), espeak, "en-us")
    # U+0001 starts an embedded command in espeak-ng ("\x01V" would change the voice)
    tricky = phonemize(clean_text("Hello\x01 there.\x00"), espeak, "en-us")
    assert [s.phonemes for s in tricky] == [s.phonemes for s in plain]
    with pytest.raises(SynthesisError, match="NUL"):
        espeak.clauses("a\x00b", "en-us")


def test_emoji_and_other_scripts_are_read_not_fatal(espeak) -> None:  # type: ignore[no-untyped-def]
    for text in ("I love it 😀👍🏽!", "Ünïcödé façade, naïve café.", "中文测试。", "🙂" * 50,
                 "\u202eright-to-left override\u202c", "a\u0301\u0301\u0301 b", "\ufffd\ufeff"):
        sentences = phonemize(text, espeak, "en-us")
        assert all(isinstance(p, str) for s in sentences for p in s.phonemes)


def test_unknown_espeak_voice_and_missing_library() -> None:
    with pytest.raises(SynthesisError, match="no voice"):
        get_espeak().clauses("hello", "xx-nonexistent")
    with pytest.raises(RuntimeUnavailableError, match="apt-get install"):
        get_espeak("/nonexistent/libespeak-ng.so.1")
    with pytest.raises(RuntimeUnavailableError, match="as libespeak-ng"):
        get_espeak("libc.so.6")  # a library, but not espeak-ng


def test_threads_share_espeak_safely(espeak) -> None:  # type: ignore[no-untyped-def]
    texts = [f"Sentence number {i}, said clearly. And another one?" for i in range(8)]
    expected = [phonemize(t, espeak, "en-us") for t in texts]
    got: dict[int, object] = {}

    def run(i: int) -> None:
        for _ in range(5):
            got[i] = phonemize(texts[i], espeak, "en-us")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [got[i] for i in range(8)] == expected
