"""One yardstick for word error rates, and the demo's small normalizer held to it.

The tests measure speech recognition with OpenAI's own ``EnglishTextNormalizer``
(``support.whisper_text``, loaded from the openai-whisper sdist). The demo's round trip, runtime
code with no test dependencies, counts with ``runanywhere.adapters.wer``: here it must give the
same words as OpenAI's on the tests' sentence set and on any text made of its words, and where
it stops short (spelled-out numbers, units, British spellings) the difference is written down.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runanywhere.adapters import wer
from runanywhere.adapters.roundtrip import SENTENCE
from support.speech import SENTENCES
from support.whisper_text import english_normalizer, word_error_rate, word_errors


def openai(text: str) -> list[str]:
    return english_normalizer()(text).split()


# -- the yardstick ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "normalized"), [
    ("Flight 42 leaves at 7:45.", "flight 42 leaves at 7 45"),
    ("flight forty two leaves at seven forty five", "flight 42 leaves at 745"),
    ("It is twenty five percent off, ten dollars!", "it is 25% off $10"),
    ("one thousand two hundred thirty four and three point one four", "1234 and 3.14"),
    ("the twenty first of May", "the 21st of may"),
    ("Dr. Smith won't go (maybe) um, y'know", "doctor smith will not go y know"),
    ("Café naïve — 1,234,567 [inaudible]", "cafe naive 1234567"),
    ("The colour of the theatre", "the color of the theater"),
])
def test_the_yardstick_is_whispers_english_normalization(text: str, normalized: str) -> None:
    assert openai(text) == normalized.split()


def test_the_yardstick_counts_edits_per_reference_word() -> None:
    assert word_errors("a b c d", "a b c d") == (0, 4)
    assert word_errors("a b c d", "a x c") == (2, 4)  # one substitution, one deletion
    assert word_errors("a b", "a b c d") == (2, 2)  # two insertions
    assert word_errors("Forty two!", "42") == (0, 1)
    assert word_errors("a b c d", "d c b a") == (4, 4)  # Levenshtein over words
    assert word_error_rate([("a b c d", "a x c d"), ("e f", "e f")]) == pytest.approx(1 / 6)
    assert word_error_rate([]) == 0.0


# -- the demo's normalizer against it --------------------------------------------------------------

#: Where the demo's normalizer stops short of OpenAI's: (text, its words, OpenAI's words).
STOPS_SHORT = [
    ("She paid 42 dollars for 7 books and a cup of coffee.",
     "she paid 42 dollars for 7 books and a cup of coffee",
     "she paid $42 for 7 books and a cup of coffee"),
    ("In 1999, about 3.5 million people visited; 12% came back.",
     "in 1999 about 3.5 million people visited 12 came back",
     "in 1999 about 3500000 people visited 12% came back"),
    ("Our team won five games.", "our team won five games", "our team won 5 games"),
    ("The colour of the theatre", "the colour of the theatre", "the color of the theater"),
]

#: The demo's sentence, the tests' sentence set (less the ones above) and texts as Whisper
#: writes them: capitals, punctuation, contractions, titles, hyphens, brackets, fillers, accents.
AGREES = [
    SENTENCE,
    "Hello, this sentence went from text to speech and back to text.",
    *(s for s in SENTENCES if s not in {t for t, _, _ in STOPS_SHORT}),
    "Dr. Emily Johnson moved to Chicago with her husband, Peter, in 2015.",
    "It's Mr. Smith's text-to-speech demo; we're sure they'll like it, aren't they?",
    "Um, I can't say... [BLANK_AUDIO] (laughs) Let's go!",
    "Café naïve — 1,234,567 books",
    "William & Sarah bought a small farm in Texas.",
]


def test_the_sentence_set_is_covered() -> None:
    """Every sentence the tests speak is held to the yardstick, one way or the other."""
    listed = set(AGREES) | {t for t, _, _ in STOPS_SHORT}
    assert set(SENTENCES) <= listed


@pytest.mark.parametrize("text", AGREES)
def test_the_demo_normalizer_gives_openais_words(text: str) -> None:
    assert wer.words(text) == openai(text)


@pytest.mark.parametrize(("text", "ours", "theirs"), STOPS_SHORT)
def test_where_the_demo_normalizer_stops_short(text: str, ours: str, theirs: str) -> None:
    assert wer.normalize(text) == ours
    assert openai(text) == theirs.split()


VOCABULARY = sorted({w for s in [*SENTENCES, SENTENCE] for w in re.findall(r"[A-Za-z]+", s)}
                    | {"it's", "won't", "don't", "we're", "I'm", "they'll", "Dr.", "Mr.",
                       "text-to-speech", "café", "um", "(laughs)", "[music]"})
WORD = st.tuples(st.sampled_from(VOCABULARY), st.sampled_from([str.lower, str.title, str.upper]),
                 st.sampled_from(["", "", "", ",", ".", "!", "?", ";", ":", " -", '"'])
                 ).map(lambda t: t[1](t[0]) + t[2]).filter(lambda w: ".." not in w)
# (Two periods in a row are where the two part by design: see the test below.)


def test_two_periods_in_a_row_are_where_ours_parts_from_openais() -> None:
    """OpenAI's rule for a period (``re.sub(r"\\.([^0-9]|$)", r" \\1", s)``) consumes the next
    character as it matches, so of ".." the second period survives as a word of its own, and
    would count as an error against a transcript without it. Ours drops both: a known,
    deliberate difference, the only one found on text of these words."""
    for text, word in (("hello..", "hello"), ("Dr..", "doctor")):
        assert openai(text) == [word, "."]
        assert wer.words(text) == [word]


@settings(max_examples=300, deadline=None)
@given(st.lists(WORD, min_size=1, max_size=12))
def test_any_text_of_those_words_normalizes_as_openais(words: list[str]) -> None:
    text = " ".join(words)
    assert wer.words(text) == openai(text)


def test_the_demo_word_error_rate_counts_edits_per_reference_word() -> None:
    assert wer.word_error_rate("Hello, world!", "hello world") == 0.0
    assert wer.word_error_rate("the cat sat", "the bat sat") == pytest.approx(1 / 3)
    assert wer.word_error_rate("the cat sat", "the cat sat down") == pytest.approx(1 / 3)
    assert wer.word_error_rate("the cat", "") == 1.0
    assert wer.word_error_rate("", "") == 0.0 and wer.word_error_rate("", "x") == 1.0
    assert wer.word_error_rate(SENTENCE, SENTENCE.upper()) == 0.0
    assert wer.word_errors("a b c d", "d c b a") == (4, 4)
    assert wer.word_errors("It won't rain.", "it will not rain") == (0, 4)
