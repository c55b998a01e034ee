"""What the OpenAI-compatible routes (``routes/openai_text.py``, ``routes/openai_audio.py``)
share, one module per job:

    pool.py          the models they run on: loaded on first use within the loaded-model
                     budget, unloaded after ``--keep-alive``, one fair line of requests each
    turns.py         a model's line: slots, first come first served, bounded (429)
    models.py        which model a request names (cached, pulled through, the right type)
    requests.py      request bodies checked field by field (OpenAI's names and ranges)
    shapes.py        response objects and streamed chunks (the ``openai`` package's types)
    sse.py           server-sent events ending with ``data: [DONE]``
    transcripts.py   a transcription as json, text, verbose_json, srt, vtt
    speech_audio.py  speech as wav, pcm (24 kHz), flac, mp3, opus
    uploads.py       a multipart upload to a temporary file, size-bounded
    connection.py    JSON bodies within a limit; work stopped when the client leaves
    errors.py        OpenAI's error objects and statuses

docs/openai.md is the user's guide.
"""
