"""One settings object, read from upper-case environment variables only."""

from __future__ import annotations

from closedloop.settings import Settings


def test_an_unrelated_home_variable_does_not_move_the_store(monkeypatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "user-home"))
    monkeypatch.delenv("CLOSEDLOOP_HOME", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    settings = Settings()
    assert settings.home == tmp_path / ".closedloop"
    assert settings.resolved_database_url().endswith(f"{tmp_path}/.closedloop/closedloop.db")


def test_settings_come_from_their_documented_names(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("CLOSEDLOOP_HOME", str(tmp_path))
    monkeypatch.setenv("CLOSEDLOOP_SEED", "5")
    monkeypatch.setenv("seed", "9")  # a field's own name is not a setting
    settings = Settings()
    assert settings.home == tmp_path and settings.seed == 5
    assert Settings(home=tmp_path / "x").home == tmp_path / "x"  # by name in code still works
