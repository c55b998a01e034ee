"""Word error rate after Whisper's English text normalization.

``normalize_english`` is a compact form of openai-whisper's ``EnglishTextNormalizer``
(``whisper/normalizers/english.py``, MIT): lower case; no text in brackets or parentheses; no
fillers (hmm, uh, um); contractions and titles spelled out (won't -> will not, dr -> doctor);
no comma inside a number, no period outside one; symbols and diacritics dropped except the
ones numbers use (``. % $ ¢``); spelled-out numbers as digits (twenty five -> 25, three point
five -> 3.5, five percent -> 5%, ten dollars -> $10, twenty first -> 21st). Whisper's British ->
American spelling table is left out (our voices speak American English). The function is
idempotent: normalizing twice changes nothing.

``word_error_rate(ref, hyp)`` normalizes both and returns (substitutions + deletions +
insertions) / words of the reference, by Levenshtein distance over words.
"""

from __future__ import annotations

import re
import unicodedata

_FILLERS = re.compile(r"\b(hmm|mm|mhm|mmm|uh|um)\b")
_REPLACE = [(re.compile(p), r) for p, r in (
    (r"\bwon't\b", "will not"), (r"\bcan't\b", "can not"), (r"\blet's\b", "let us"),
    (r"\bain't\b", "aint"), (r"\by'all\b", "you all"), (r"\bwanna\b", "want to"),
    (r"\bgotta\b", "got to"), (r"\bgonna\b", "going to"), (r"\bma'am\b", "madam"),
    (r"\bmr\b", "mister "), (r"\bmrs\b", "missus "), (r"\bst\b", "saint "),
    (r"\bdr\b", "doctor "), (r"\bprof\b", "professor "), (r"\bjr\b", "junior "),
    (r"\bsr\b", "senior "),
    (r"'d been\b", " had been"), (r"'s been\b", " has been"), (r"'d gone\b", " had gone"),
    (r"'s gone\b", " has gone"), (r"'d done\b", " had done"), (r"'s got\b", " has got"),
    (r"n't\b", " not"), (r"'re\b", " are"), (r"'s\b", " is"), (r"'d\b", " would"),
    (r"'ll\b", " will"), (r"'t\b", " not"), (r"'ve\b", " have"), (r"'m\b", " am"))]

_ONES = {w: i for i, w in enumerate((
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen"))}
_TENS = {w: 10 * i for i, w in enumerate(
    ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"), start=2)}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 10**6, "billion": 10**9}
_ORDINALS = {"first": 1, "second": 2, "third": 3, "fifth": 5, "eighth": 8, "ninth": 9,
             "twelfth": 12, **{w + "th": n for w, n in _ONES.items() if n > 3 and n != 5
                               and n not in (8, 9, 12)},
             **{w[:-1] + "ieth": n for w, n in _TENS.items()}}
_SUFFIX = {1: "st", 2: "nd", 3: "rd"}


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else _SUFFIX.get(n % 10, 'th')}"


def _numbers(words: list[str]) -> list[str]:
    """Spelled-out numbers -> digits, then "N percent" / "N dollars" / "N cents"."""
    out: list[str] = []
    total = current = 0  # thousands groups done, and the part below them
    last = ""  # the number's last word: "one", "ten" (twenty...), "scale"; "" when none
    decimals: str | None = None

    def flush() -> None:
        nonlocal total, current, last, decimals
        if last:
            value = total + current
            out.append(f"{value}.{decimals}" if decimals else str(value))
        total = current = 0
        last, decimals = "", None

    for word in words:
        if decimals is not None and word in _ONES and _ONES[word] < 10:
            decimals += str(_ONES[word])
        elif word in _ONES:
            n = _ONES[word]
            if last == "scale" or (last == "ten" and n < 10):
                current += n
            else:
                flush()
                current = n
            last = "one"
        elif word in _TENS:
            if last != "scale":
                flush()
            current += _TENS[word]
            last = "ten"
        elif word in _SCALES and last:
            scale = _SCALES[word]
            if scale == 100:
                current *= 100
            else:
                total, current = total + current * scale, 0
            last = "scale"
        elif word in _ORDINALS:
            base = total + current if last in ("ten", "scale") else 0
            if not base:
                flush()
            total = current = 0
            last, decimals = "", None
            out.append(_ordinal(base + _ORDINALS[word]))
        elif word == "point" and last and decimals is None:
            decimals = ""
        else:
            flush()
            out.append(word)
    flush()
    merged: list[str] = []
    for word in out:
        if merged and re.fullmatch(r"\d+(\.\d+)?", merged[-1]):
            if word in ("percent", "per cent"):
                merged[-1] += "%"
                continue
            if word in ("dollar", "dollars"):
                merged[-1] = "$" + merged[-1]
                continue
            if word in ("cent", "cents"):
                merged[-1] = "¢" + merged[-1]
                continue
        merged.append(word)
    return merged


def _symbols_out(text: str) -> str:
    """Marks and symbols -> spaces (diacritics dropped), except the ones numbers use."""
    out = []
    for c in unicodedata.normalize("NFKD", text):
        if unicodedata.category(c) == "Mn":
            continue
        out.append(c if c in ".%$¢€£" or unicodedata.category(c)[0] not in "MSP" else " ")
    return "".join(out)


def normalize_english(text: str) -> str:
    """``text`` as Whisper's English normalizer leaves it (see the module's docstring)."""
    s = text.lower()
    s = re.sub(r"[<\[][^>\]]*[>\]]", "", s)
    s = re.sub(r"\(([^)]+?)\)", "", s)
    s = _FILLERS.sub("", s)
    s = re.sub(r"\s+'", "'", s)
    s = s.replace("\u2019", "'")
    for pattern, replacement in _REPLACE:
        s = pattern.sub(replacement, s)
    s = re.sub(r"(\d),(\d)", r"\1\2", s)
    s = re.sub(r"\.([^0-9]|$)", r" \1", s)
    s = _symbols_out(s)
    s = " ".join(_numbers(s.split()))
    s = re.sub(r"[.$¢€£]([^0-9])", r" \1", s)
    s = re.sub(r"([^0-9])%", r"\1 ", s)
    return " ".join(s.split())


def word_error_rate(ref: str, hyp: str) -> float:
    """Word edits (substitutions, deletions, insertions) per reference word, both normalized."""
    r = normalize_english(ref).split()
    h = normalize_english(hyp).split()
    if not r:
        return 0.0 if not h else 1.0
    row = list(range(len(h) + 1))
    for i, rw in enumerate(r, start=1):
        prev, row[0] = row[0], i
        for j, hw in enumerate(h, start=1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (rw != hw))
    return row[-1] / len(r)
