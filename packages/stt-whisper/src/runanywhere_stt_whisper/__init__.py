"""Whisper speech-to-text for runanywhere, installed as ``runanywhere-stt-whisper``.

Plugs into the core through entry points: the adapter ``faster-whisper`` (Whisper models in
CTranslate2 format, decoded by faster-whisper; the default for catalog type ``stt`` + format
``ctranslate2``) and the runtime ``ctranslate2`` (loads such a model folder). Nothing here is
imported until one of them is asked for.
"""

__version__ = "0.2.0"
