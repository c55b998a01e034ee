"""Word error rate for the demo's spoken round trip, after a small English normalization.

The tests measure speech recognition with OpenAI's own ``EnglishTextNormalizer`` (the yardstick,
loaded from the openai-whisper sdist at test time); runtime code cannot depend on that, so this
module keeps the part of it that plain sentences need: lower case; no text in brackets or
parentheses; no fillers (uh, um); contractions and the common titles spelled out (won't ->
will not, it's -> it is, dr -> doctor); no comma inside a number; diacritics dropped; every
other mark, symbol and punctuation a space (a decimal point between digits stays).

On text without spelled-out numbers, units (%, $, "dollars") or British spellings it gives the
same words as OpenAI's (``tests/test_wer.py`` holds the two together on the tests' sentence
sets); there OpenAI's goes further ("forty two dollars" -> "$42"), this one keeps the words.
Two periods in a row differ too: OpenAI's keeps the second as a word ("hello.." -> "hello ."),
this one drops both.
"""

from __future__ import annotations

import re
import unicodedata

_BRACKETED = re.compile(r"[<\[][^>\]]*[>\]]|\([^)]+?\)")
_FILLERS = re.compile(r"\b(hmm|mm|mhm|mmm|uh|um)\b")
#: Whisper's normalizer's table, less its rare entries (wanna, y'all, esq, ...).
_SPELLED_OUT = [(re.compile(p), r) for p, r in (
    (r"\bwon't\b", "will not"), (r"\bcan't\b", "can not"), (r"\blet's\b", "let us"),
    (r"\bmr\b", "mister "), (r"\bmrs\b", "missus "), (r"\bdr\b", "doctor "),
    (r"\bst\b", "saint "), (r"\bprof\b", "professor "), (r"\bjr\b", "junior "),
    (r"\bsr\b", "senior "),
    (r"n't\b", " not"), (r"'re\b", " are"), (r"'s\b", " is"), (r"'d\b", " would"),
    (r"'ll\b", " will"), (r"'t\b", " not"), (r"'ve\b", " have"), (r"'m\b", " am"))]
#: Anything but a letter or digit, except a decimal point between two digits.
_NOT_A_WORD = re.compile(r"(?!(?<=\d)\.(?=\d))[\W_]")


def normalize(text: str) -> str:
    """``text`` as words to compare (see the module's docstring)."""
    s = _BRACKETED.sub("", text.lower())
    s = _FILLERS.sub("", s)
    s = re.sub(r"\s+'", "'", s)
    for pattern, replacement in _SPELLED_OUT:
        s = pattern.sub(replacement, s)
    s = re.sub(r"(\d),(\d)", r"\1\2", s)
    s = "".join(c for c in unicodedata.normalize("NFKD", s) if unicodedata.category(c) != "Mn")
    return " ".join(_NOT_A_WORD.sub(" ", s).split())


def words(text: str) -> list[str]:
    """The normalized words of ``text``."""
    return normalize(text).split()


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(substitutions + deletions + insertions, words of the reference), both normalized."""
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        diagonal, row[0] = row[0], i
        for j, h in enumerate(hyp, start=1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (r != h))
    return row[-1], len(ref)


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word edits per reference word (0.0 is a perfect transcript; an empty reference is 0.0
    against an empty hypothesis and 1.0 against any other)."""
    errors, n = word_errors(reference, hypothesis)
    if n == 0:
        return 0.0 if errors == 0 else 1.0
    return errors / n


__all__ = ["normalize", "word_error_rate", "word_errors", "words"]
