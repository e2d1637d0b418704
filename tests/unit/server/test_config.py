import pytest
from pydantic import ValidationError

from server.config import Settings


def test_environment_variables_set_options(monkeypatch):
    monkeypatch.setenv("COT_SERVER_BEAM_WIDTH", "3")
    monkeypatch.setenv("COT_SERVER_MODEL", "org/some-vlm")
    settings = Settings()
    assert settings.beam_width == 3
    assert settings.model_name == "org/some-vlm"  # like `vllm serve`: --model as given


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


def test_served_names_are_aliases_the_first_one_reported():
    settings = Settings(model="models/tiny-cot", served_model_name=["tiny-cot", "cot"])
    assert settings.model_name == "tiny-cot" and settings.served_names == ("tiny-cot", "cot")
    assert Settings(served_model_name="a, b,").served_names == ("a", "b")
    assert Settings(model="org/vlm").served_names == ("org/vlm",)


def test_engine_options_are_copied_and_read_where_the_server_needs_them():
    given = {"limit_mm_per_prompt": {"image": 2}, "trust_remote_code": True}
    settings = Settings(engine=given)
    given["trust_remote_code"] = False
    assert settings.trust_remote_code and settings.limit_images_per_prompt == 2
    assert not Settings().trust_remote_code and Settings().limit_images_per_prompt == 4


def test_a_chat_template_is_a_file_or_the_template_itself(tmp_path):
    from server.engine import _given_template

    path = tmp_path / "t.jinja"
    path.write_text("{{ messages }}")
    assert _given_template(str(path)) == "{{ messages }}"
    assert _given_template("{% for m in messages %}{% endfor %}").startswith("{%")
    assert _given_template(None) is None
    with pytest.raises(ValueError, match="neither a file nor"):
        _given_template("no/such/template.jinja")


def test_an_effort_budget_is_unset_by_none():
    assert Settings(effort_budget_medium="none").effort_budget("medium") is None
    assert Settings(effort_budget_medium="2.5").effort_budget("medium") == 2.5
    assert Settings().effort_budget("medium") == 2.0 and Settings().effort_budget("high") is None
