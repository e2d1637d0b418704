"""The README's configuration table stays in step with the settings."""

from pathlib import Path

from server.config import Settings

README = (Path(__file__).resolve().parents[3] / "README.md").read_text()


def test_every_setting_has_a_row_with_its_flag_and_variable():
    for name in Settings.flag_fields():
        row = f"| `--{name.replace('_', '-')}` | `COT_SERVER_{name.upper()}` |"
        assert row in README, name


def test_readme_names_the_two_setup_commands():
    assert "make serve" in README and "make test" in README
