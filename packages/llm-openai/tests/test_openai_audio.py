"""The ``openai-stt`` and ``openai-tts`` adapters against ``runanywhere serve`` (real Whisper
tiny.en and the real Piper joe voice behind it), and a voice pipeline that mixes local and
remote parts: the Piper voice here asks a question, Silero VAD here finds it, Whisper on the
server writes it down, SmolLM2 on llama.cpp's own server answers, and the voice on the server
says the answer, which Whisper here hears again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from openai_fixtures import *  # noqa: F403
from openai_fixtures import LLAMA_KEY, LlamaServer

from runanywhere.adapters import Transcript, TranscriptSegment
from runanywhere.adapters.audio import read_audio, resample
from runanywhere_llm_openai import OpenAILLMAdapter, OpenAISTTAdapter, OpenAITTSAdapter
from support.isolation import _isolated_env
from support.openai_world import SMOL, SYSTEM, VOICE, WHISPER, registry, speech_wav, words
from support.serving import InProcessServer

LINE = "The library opens early in the morning on weekdays."


def local_whisper(home: Path) -> Any:
    from runanywhere_stt_whisper.faster_whisper_stt import FasterWhisperSTTAdapter

    entry = registry(home).cache.entry(WHISPER)
    assert entry is not None
    return FasterWhisperSTTAdapter.from_dir(entry.base, language="en")


def test_remote_speech_is_heard_by_local_whisper(served: InProcessServer,
                                                 serve_home: Path) -> None:
    tts = OpenAITTSAdapter(base_url=f"{served.url}/v1", voice="any-name")
    tts.load_model_sync(VOICE).unwrap()
    chunks = list(tts.stream(LINE + " Please be on time."))
    assert len(chunks) == 2 and all(c.sample_rate == 22050 for c in chunks)  # two sentences
    audio = np.concatenate([c.audio for c in chunks])
    assert tts.sample_rate == 22050 and audio.dtype == np.float32
    heard = local_whisper(serve_home).transcribe(audio, 22050)
    assert words(heard) == words(LINE + " Please be on time."), heard


def test_remote_whisper_writes_down_what_piper_said(served: InProcessServer,
                                                    tmp_path: Path) -> None:
    wav = speech_wav(LINE, tmp_path / "line.wav")
    stt = OpenAISTTAdapter(base_url=f"{served.url}/v1", language="en")
    stt.load_model_sync(WHISPER).unwrap()
    segments: list[TranscriptSegment] = []
    done: list[Transcript] = []
    stt.on(TranscriptSegment, segments.append)
    stt.on(Transcript, done.append)
    audio, sr = read_audio(wav, target_sr=None)
    t = stt.transcribe_full(audio, sr)
    assert words(t.text) == words(LINE), t.text
    assert t.language == "en" and abs(t.duration - audio.size / sr) < 0.01
    assert list(t.segments) == segments and [d.text for d in done] == [t.text]
    assert 0 <= t.segments[0].start < t.segments[-1].end <= t.duration + 0.5
    assert stt.transcribe_file(wav).text == t.text  # the file as it is, decoded by the server


def test_a_pipeline_mixing_local_and_remote_parts(
        served: InProcessServer, llama_server: LlamaServer, serve_home: Path,
        tmp_path: Path) -> None:
    from runanywhere_vad_silero import SileroVADAdapter
    from support.silero_wheel import silero_data_dir

    question = "What is the capital of France?"
    wav = speech_wav(question, tmp_path / "question.wav")
    audio, _ = read_audio(wav, target_sr=16000)
    padded = np.concatenate([np.zeros(16000, np.float32), audio, np.zeros(16000, np.float32)])

    vad = SileroVADAdapter.from_file(silero_data_dir() / "silero_vad.onnx")  # local
    (speech,) = vad.detect(padded, 16000)
    clip = padded[int(speech.start * 16000):int(speech.end * 16000)]

    stt = OpenAISTTAdapter(base_url=f"{served.url}/v1", language="en")  # remote: serve
    stt.load_model_sync(WHISPER).unwrap()
    heard = stt.transcribe(clip, 16000)
    assert words(heard) == words(question), heard

    llm = OpenAILLMAdapter(base_url=llama_server.base_url, api_key=LLAMA_KEY)  # remote: llama
    llm.load_model_sync(SMOL).unwrap()
    answer = llm.chat([{"role": "system", "content": SYSTEM},
                       {"role": "user", "content": heard}], max_tokens=24,
                      temperature=0).collect().text
    assert "Paris" in answer

    tts = OpenAITTSAdapter(base_url=f"{served.url}/v1")  # remote: serve's Piper
    tts.load_model_sync(VOICE).unwrap()
    spoken, rate = tts.synthesize(answer)
    again = local_whisper(serve_home).transcribe(resample(spoken, rate, 16000), 16000)
    assert "paris" in words(again), again


def test_speech_options_refused_by_the_server_are_typed(served: InProcessServer) -> None:
    from runanywhere.errors import SynthesisError

    tts = OpenAITTSAdapter(base_url=f"{served.url}/v1")
    tts.load_model_sync(SMOL).unwrap()  # serve answers that an LLM does not speak
    with pytest.raises(SynthesisError, match=r"refused the request \(400\).*a text-to-speech"):
        tts.synthesize("Hello.")
