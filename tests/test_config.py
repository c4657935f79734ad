"""Settings: defaults < LAKEHOUSE_* environment < explicit options."""

from pathlib import Path

import pytest

from lakehouse.config import Settings
from lakehouse.errors import ConfigError


def test_defaults():
    s = Settings.load(env={})
    assert s.lake == Path("lake")
    assert s.api_url == "http://127.0.0.1:8000"
    assert s.api_token is None
    assert s.models_dir == Path("lake/models")


def test_environment_overrides_defaults_and_options_override_environment():
    env = {"LAKEHOUSE_LAKE": "/data/lake", "LAKEHOUSE_WORKERS": "3",
           "LAKEHOUSE_API_URL": "http://env:1"}
    s = Settings.load(env=env, api_url="http://opt:2", workers=None)
    assert s.lake == Path("/data/lake")
    assert s.workers == 3
    assert s.api_url == "http://opt:2"


def test_bad_values_name_the_variable():
    with pytest.raises(ConfigError, match=r"\(LAKEHOUSE_WORKERS\) must be an integer, got 'many'"):
        Settings.load(env={"LAKEHOUSE_WORKERS": "many"})


def test_secrets_never_appear_in_repr():
    s = Settings.load(env={"LAKEHOUSE_API_TOKEN": "s3cret",
                           "LAKEHOUSE_ALERT_WEBHOOK": "https://hooks.example/T0/abc"})
    assert s.api_token == "s3cret"
    assert "s3cret" not in repr(s) and "hooks.example" not in repr(s)


def test_every_numeric_setting_has_a_validated_range():
    # A new int/float setting without a range would skip validation when it comes
    # from the environment (LAKEHOUSE_X=-1 or nan) and fail later with a traceback.
    import dataclasses

    from lakehouse import config

    numeric = [f.name for f in dataclasses.fields(Settings) if f.type in ("int", "float")]
    assert numeric, "Settings has numeric fields"
    assert sorted(set(numeric) - set(config.BOUNDS)) == []


@pytest.mark.parametrize("value", ["-1", "nan", "inf"])
def test_a_numeric_environment_value_out_of_range_is_one_config_error(value):
    import dataclasses

    numeric = [f.name for f in dataclasses.fields(Settings) if f.type == "float"]
    for name in numeric:
        env = {f"LAKEHOUSE_{name.upper()}": value}
        with pytest.raises(ConfigError, match=f"LAKEHOUSE_{name.upper()}"):
            Settings.load(env=env)
