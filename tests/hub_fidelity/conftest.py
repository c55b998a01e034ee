"""huggingface_hub's own tests of the Hub stand-in set their environment for the whole session
(huggingface_hub reads it once, at import): the suite's per-test isolation must not undo it."""

import pytest


@pytest.fixture(autouse=True)
def _isolated_env() -> None:
    """Overrides tests/conftest.py's fixture of the same name: nothing to isolate here."""
