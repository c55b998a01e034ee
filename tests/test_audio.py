"""Audio in and out: soundfile for files (WAV PCM and float, FLAC, OGG), soxr for resampling."""

from __future__ import annotations

import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from runanywhere.adapters.audio import (
    as_mono_float32,
    audio_info,
    read_audio,
    read_wav,
    resample,
    save_wav,
    write_audio,
)
from runanywhere.errors import AudioError, ModelError, RuntimeUnavailableError

sf = pytest.importorskip("soundfile")
pytest.importorskip("soxr")


def tone(freq: float, sr: int, seconds: float = 1.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def level_db(x: np.ndarray, reference: float) -> float:
    """RMS of ``x`` relative to a sine of amplitude ``reference``, in dB."""
    rms = float(np.sqrt(np.mean(np.asarray(x, np.float64) ** 2)))
    return 20 * np.log10(max(rms, 1e-30) / (reference / np.sqrt(2)))


# -- resampling ------------------------------------------------------------------------------------


def test_a_tone_above_the_new_nyquist_is_removed_not_aliased() -> None:
    # 12 kHz at 48 kHz -> 16 kHz: Nyquist is 8 kHz, so the tone must vanish. Linear interpolation
    # (the old resampler) folds it to 4 kHz at nearly full scale.
    x = tone(12000, 48000, amp=0.9)
    y = resample(x, 48000, 16000)
    assert y.dtype == np.float32 and y.size == 16000
    assert level_db(y[200:-200], 0.9) < -60
    naive = np.interp(np.arange(16000) * 3.0, np.arange(x.size), x)
    assert level_db(naive, 0.9) > -10  # the case the test guards against


@pytest.mark.parametrize(("src", "dst", "freq"), [(44100, 16000, 440.0), (8000, 16000, 1000.0),
                                                  (22050, 16000, 3000.0), (16000, 48000, 5000.0)])
def test_in_band_tones_keep_frequency_length_and_level(src: int, dst: int, freq: float) -> None:
    y = resample(tone(freq, src, 1.0), src, dst)
    assert y.size == dst  # 1 s in, 1 s out
    spectrum = np.abs(np.fft.rfft(y[dst // 10: dst // 10 + dst // 2]))  # 0.5 s: 2 Hz per bin
    assert abs(int(np.argmax(spectrum)) * 2 - freq) <= 2
    assert abs(level_db(y[dst // 10:-dst // 10], 0.5)) < 0.1


def test_resample_is_identity_at_the_same_rate_and_rejects_bad_rates() -> None:
    x = tone(440, 16000)
    assert resample(x, 16000, 16000) is not None and np.array_equal(resample(x, 16000, 16000), x)
    with pytest.raises(ValueError, match="positive"):
        resample(x, 0, 16000)


def test_mono_mixdown_and_integer_scaling() -> None:
    left, right = tone(440, 16000), np.full(16000, 0.25, np.float32)
    both = np.stack([left, right], axis=1)
    assert np.allclose(as_mono_float32(both), (left + right) / 2)
    assert np.allclose(as_mono_float32(both.T), (left + right) / 2)  # channels first
    assert as_mono_float32(np.array([-32768, 0, 16384], np.int16)).tolist() == [-1.0, 0.0, 0.5]
    assert as_mono_float32(np.array([0, 128, 255], np.uint8)).tolist() == [-1.0, 0.0, 0.9921875]
    with pytest.raises(ValueError, match="1-D"):
        as_mono_float32(np.zeros((2, 2, 2)))


# -- files -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("subtype", "tolerance"), [("PCM_U8", 0.01), ("PCM_16", 1e-4),
                                                    ("PCM_24", 1e-6), ("PCM_32", 1e-7),
                                                    ("FLOAT", 0.0), ("DOUBLE", 1e-7)])
def test_wav_subtypes_round_trip(tmp_path: Path, subtype: str, tolerance: float) -> None:
    x = tone(440, 16000)
    path = write_audio(tmp_path / f"{subtype}.wav", x, 16000, subtype=subtype)
    assert audio_info(path)["subtype"] == subtype
    got, sr = read_audio(path)
    assert sr == 16000 and got.dtype == np.float32 and got.size == x.size
    assert np.abs(got - x).max() <= tolerance + 1e-9


def test_a_float_wav_written_by_another_tool_is_read(tmp_path: Path) -> None:
    # 32-bit IEEE float WAV (format tag 3), written with soundfile directly, stereo, 48 kHz.
    x = tone(1000, 48000, 0.5)
    sf.write(tmp_path / "f.wav", np.stack([x, x], axis=1), 48000, subtype="FLOAT")
    with pytest.raises(wave.Error), wave.open(str(tmp_path / "f.wav")):
        pass  # the stdlib cannot read it (the old reader's limit)
    got, sr = read_wav(tmp_path / "f.wav", target_sr=None)
    assert sr == 48000 and np.array_equal(got, x)
    down, sr = read_wav(tmp_path / "f.wav")
    assert sr == 16000 and down.size == 8000


def test_flac_is_lossless_and_ogg_keeps_the_tone(tmp_path: Path) -> None:
    x = tone(440, 22050)
    write_audio(tmp_path / "a.flac", x, 22050)
    got, sr = read_audio(tmp_path / "a.flac", target_sr=None)
    assert sr == 22050 and np.abs(got - x).max() < 1e-4
    write_audio(tmp_path / "a.ogg", x, 22050)
    assert audio_info(tmp_path / "a.ogg")["format"] == "OGG"
    got, sr = read_audio(tmp_path / "a.ogg")
    assert sr == 16000 and abs(got.size - 16000) <= 2
    spectrum = np.abs(np.fft.rfft(got[:16000]))
    assert abs(int(np.argmax(spectrum)) - 440) <= 1
    assert abs(level_db(got[2000:-2000], 0.5)) < 1.0


def test_save_wav_writes_synthesized_audio(tmp_path: Path) -> None:
    x = tone(440, 16000, amp=1.5)  # out of range: clipped for PCM, kept for FLOAT
    p = save_wav(tmp_path / "out.wav", x, 16000)
    info = audio_info(p)
    assert info == {"sample_rate": 16000, "channels": 1, "frames": 16000, "format": "WAV",
                    "subtype": "PCM_16"}
    assert np.abs(read_audio(p)[0]).max() <= 1.0
    save_wav(tmp_path / "f.wav", x, 16000, subtype="FLOAT")
    assert np.array_equal(read_audio(tmp_path / "f.wav")[0], x)
    with pytest.raises(AudioError, match=r"out\.mp4"):
        save_wav(tmp_path / "out.mp4", x, 16000)
    with pytest.raises(AudioError, match=r"x\.xyz.*unknown audio format"):
        write_audio(tmp_path / "x.xyz", x, 16000)


def test_espeak_ng_output_is_read(tmp_path: Path) -> None:
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        pytest.fail("espeak-ng is not installed (Debian package espeak-ng)")
    subprocess.run([espeak, "-w", str(tmp_path / "s.wav"), "Hello there."], check=True,
                   timeout=60)
    raw, sr = read_audio(tmp_path / "s.wav", target_sr=None)
    assert sr == 22050 and 0.5 < raw.size / sr < 3 and np.abs(raw).max() > 0.1
    audio, sr = read_audio(tmp_path / "s.wav")
    assert sr == 16000 and abs(audio.size - round(raw.size * 16000 / 22050)) <= 1


def test_bad_files_raise_a_typed_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "junk.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really")
    (tmp_path / "text.flac").write_text("hello")
    (tmp_path / "empty.ogg").write_bytes(b"")
    for name in ("junk.wav", "text.flac", "empty.ogg"):
        with pytest.raises(AudioError, match=name) as info:
            read_audio(tmp_path / name)
        assert isinstance(info.value, ModelError) and info.value.path == tmp_path / name
    with pytest.raises(AudioError, match=r"missing\.wav: no such audio file"):
        read_audio(tmp_path / "missing.wav")
    with pytest.raises(AudioError, match="not a readable"):
        audio_info(tmp_path / "junk.wav")
    with pytest.raises(AudioError, match="cannot write"):
        write_audio(tmp_path / "no-such-dir" / "a.wav", tone(440, 16000), 16000)


def test_missing_libraries_name_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    save_wav(tmp_path / "a.wav", tone(440, 8000), 8000)
    monkeypatch.setitem(sys.modules, "soundfile", None)  # as if not installed
    with pytest.raises(RuntimeUnavailableError, match=r"runanywhere\[audio\]"):
        read_audio(tmp_path / "a.wav")
    monkeypatch.setitem(sys.modules, "soxr", None)
    with pytest.raises(RuntimeUnavailableError, match=r"soxr.*runanywhere\[audio\]"):
        resample(tone(440, 8000), 8000, 16000)
