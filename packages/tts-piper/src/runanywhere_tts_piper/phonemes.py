"""Piper's text -> sentences of phonemes -> phoneme ids, as piper-tts builds them.

From piper-tts 1.8 (``voice.py``, ``phonemize_espeak.py``, ``phoneme_ids.py``; read, not
copied: that code is GPL):

- ``[[ ... ]]`` in the text is raw phonemes, taken character by character; a space before or
  after the block in the text becomes a space phoneme; text right after a block continues the
  block's sentence;
- the rest goes to espeak-ng in the voice's ``espeak.voice``, clause by clause; language-switch
  marks ``(en)`` are dropped from a clause's phonemes; the clause's punctuation (``. ? ! , : ;``)
  is kept after them, plus a space after ``, : ;``; clauses join with nothing in between, and a
  clause that ends a sentence closes it;
- phonemes are the Unicode code points of that string after NFD (so an accent is a phoneme of
  its own); known vowel clusters (``vowel_clusters`` in the voice's config) merge into one;
- ids: ``^`` then ``_``, each phoneme's ids followed by ``_``, then ``$`` (BOS, PAD, EOS); a
  phoneme missing from the map is left out (piper-tts logs it).

``phoneme_type: "text"`` voices skip espeak-ng: the phonemes are the text's code points (NFD).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from .espeak import Clause, Espeak

log = logging.getLogger("runanywhere.tts.piper")

PAD, BOS, EOS = "_", "^", "$"
_RAW_BLOCK = re.compile(r"(\[\[.*?\]\])")
_LANGUAGE_SWITCH = re.compile(r"\([^)]+\)")
_SPACE_AFTER = frozenset(",:;")


@dataclass
class Sentence:
    """One sentence: the text it came from and its phonemes (each one code point or cluster)."""

    text: str
    phonemes: list[str] = field(default_factory=list)


def clause_phonemes(clause: Clause) -> list[str]:
    """A clause's phonemes, with its punctuation (and a space after ``, : ;``)."""
    text = _LANGUAGE_SWITCH.sub("", clause.phonemes) + clause.terminator
    if clause.terminator in _SPACE_AFTER:
        text += " "
    return list(unicodedata.normalize("NFD", text))


def merge_clusters(phonemes: Sequence[str], clusters: Iterable[Sequence[str]]) -> list[str]:
    """``phonemes`` with each known cluster (longest first) joined into one phoneme."""
    known = {tuple(c) for c in clusters}
    if not known:
        return list(phonemes)
    longest = max(len(c) for c in known)
    out: list[str] = []
    i = 0
    while i < len(phonemes):
        for n in range(min(longest, len(phonemes) - i), 1, -1):
            if tuple(phonemes[i:i + n]) in known:
                out.append("".join(phonemes[i:i + n]))
                i += n
                break
        else:
            out.append(phonemes[i])
            i += 1
    return out


def espeak_sentences(espeak: Espeak, text: str, voice: str,
                     clusters: Sequence[tuple[str, ...]] = (),
                     max_phonemes: int | None = None) -> list[Sentence]:
    """``text`` (no raw blocks) as sentences of phonemes, with the text of each.

    ``max_phonemes``: a sentence that would grow past it is cut before the clause that would
    make it too long (espeak-ng's clauses are at most about 800 bytes of text, so each piece
    stays bounded); None cuts nothing, as piper-tts.
    """
    sentences: list[Sentence] = []
    current = Sentence("")
    start = previous_end = 0
    for clause in espeak.clauses(text, voice):
        phonemes = clause_phonemes(clause)
        if (max_phonemes is not None and current.phonemes
                and len(current.phonemes) + len(phonemes) > max_phonemes):
            current.text = " ".join(text[start:previous_end].split())
            sentences.append(current)
            current = Sentence("")
            start = previous_end
        previous_end = clause.end
        current.phonemes += phonemes
        if clause.end_of_sentence:
            current.text = " ".join(text[start:clause.end].split())
            sentences.append(current)
            current = Sentence("")
            start = clause.end
    if current.phonemes:  # text with no sentence end after its last clause
        current.text = " ".join(text[start:].split())
        sentences.append(current)
    if clusters:
        for sentence in sentences:
            sentence.phonemes = merge_clusters(sentence.phonemes, clusters)
    return sentences


def phonemize(text: str, espeak: Espeak | None, voice: str, *,
              phoneme_type: str = "espeak",
              vowel_clusters: Iterable[Sequence[str]] = (),
              max_phonemes: int | None = None) -> list[Sentence]:
    """``text`` as Piper's sentences of phonemes (empty sentences dropped)."""
    clusters = [tuple(c) for c in vowel_clusters]
    if phoneme_type == "text":
        phonemes = list(unicodedata.normalize("NFD", text))
        return [Sentence(" ".join(text.split()), phonemes)] if phonemes else []
    if espeak is None:  # pragma: no cover - the adapter always passes one for espeak voices
        raise ValueError("an espeak voice needs espeak-ng")
    sentences: list[Sentence] = []
    parts = _RAW_BLOCK.split(text)
    after_raw = False
    for i, part in enumerate(parts):
        if part.startswith("[["):
            if not sentences:
                sentences.append(Sentence(""))
            block = sentences[-1]
            if i > 0 and parts[i - 1].endswith(" "):
                block.phonemes.append(" ")
            block.phonemes.extend(part[2:-2].strip())
            if i < len(parts) - 1 and parts[i + 1].startswith(" "):
                block.phonemes.append(" ")
            block.text = " ".join(f"{block.text} {part}".split())
            after_raw = True
            continue
        found = espeak_sentences(espeak, part, voice, clusters, max_phonemes)
        if after_raw and found:  # the text right after a raw block continues its sentence
            first = found.pop(0)
            sentences[-1].phonemes += first.phonemes
            sentences[-1].text = " ".join(f"{sentences[-1].text} {first.text}".split())
        sentences += found
        after_raw = False
    return [s for s in sentences if s.phonemes]


def phoneme_ids(phonemes: Sequence[str], id_map: Mapping[str, Sequence[int]]) -> list[int]:
    """Piper's ids: BOS, PAD, then each phoneme's ids and PAD, then EOS."""
    ids = [*id_map[BOS], *id_map[PAD]]
    missing = set()
    for phoneme in phonemes:
        found = id_map.get(phoneme)
        if found is None:
            missing.add(phoneme)
            continue
        ids += found
        ids += id_map[PAD]
    ids += id_map[EOS]
    if missing:
        log.debug("phonemes not in the voice's map, left out: %s", sorted(missing))
    return ids
