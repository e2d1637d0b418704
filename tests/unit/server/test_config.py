import pytest
from pydantic import ValidationError

from server.config import Settings


def test_environment_variables_set_options(monkeypatch):
    monkeypatch.setenv("COT_SERVER_BEAM_WIDTH", "3")
    monkeypatch.setenv("COT_SERVER_MODEL", "org/some-vlm")
    settings = Settings()
    assert settings.beam_width == 3
    assert settings.model_name == "some-vlm"


def test_explicit_values_beat_the_environment(monkeypatch):
    monkeypatch.setenv("COT_SERVER_PORT", "9000")
    assert Settings(port=9100).port == 9100


def test_settings_are_frozen_and_checked():
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.port = 1  # type: ignore[misc]
    with pytest.raises(ValidationError):
        Settings(stage_schema="five-stages")
    with pytest.raises(ValidationError):
        Settings(beam_width=0)
