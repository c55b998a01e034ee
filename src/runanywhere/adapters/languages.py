"""Whisper's languages: the codes its models take and the English names OpenAI's API reports
(``verbose_json``'s ``language`` is ``"english"``, where our adapters say ``"en"``)."""

from __future__ import annotations

_PAIRS = (
    "en english,zh chinese,de german,es spanish,ru russian,ko korean,fr french,ja japanese,"
    "pt portuguese,tr turkish,pl polish,ca catalan,nl dutch,ar arabic,sv swedish,it italian,"
    "id indonesian,hi hindi,fi finnish,vi vietnamese,he hebrew,uk ukrainian,el greek,ms malay,"
    "cs czech,ro romanian,da danish,hu hungarian,ta tamil,no norwegian,th thai,ur urdu,"
    "hr croatian,bg bulgarian,lt lithuanian,la latin,mi maori,ml malayalam,cy welsh,sk slovak,"
    "te telugu,fa persian,lv latvian,bn bengali,sr serbian,az azerbaijani,sl slovenian,"
    "kn kannada,et estonian,mk macedonian,br breton,eu basque,is icelandic,hy armenian,"
    "ne nepali,mn mongolian,bs bosnian,kk kazakh,sq albanian,sw swahili,gl galician,mr marathi,"
    "pa punjabi,si sinhala,km khmer,sn shona,yo yoruba,so somali,af afrikaans,oc occitan,"
    "ka georgian,be belarusian,tg tajik,sd sindhi,gu gujarati,am amharic,yi yiddish,lo lao,"
    "uz uzbek,fo faroese,ht haitian creole,ps pashto,tk turkmen,nn nynorsk,mt maltese,"
    "sa sanskrit,lb luxembourgish,my myanmar,bo tibetan,tl tagalog,mg malagasy,as assamese,"
    "tt tatar,haw hawaiian,ln lingala,ha hausa,ba bashkir,jw javanese,su sundanese,"
    "yue cantonese")
#: Whisper's language code -> its English name, as Whisper lists them (100).
LANGUAGE_NAMES: dict[str, str] = dict(p.split(" ", 1) for p in _PAIRS.split(","))
_CODES = {name: code for code, name in LANGUAGE_NAMES.items()}


def language_name(code: str | None) -> str:
    """``"english"`` for ``"en"`` (an unknown code as it is; None: ``""``)."""
    if not code:
        return ""
    return LANGUAGE_NAMES.get(code, code)


def language_code(name_or_code: str | None) -> str | None:
    """``"en"`` for ``"english"``, ``"English"`` or ``"en"`` (an unknown value as it is)."""
    if not name_or_code:
        return None
    low = name_or_code.strip().lower()
    return low if low in LANGUAGE_NAMES else _CODES.get(low, name_or_code)


__all__ = ["LANGUAGE_NAMES", "language_code", "language_name"]
