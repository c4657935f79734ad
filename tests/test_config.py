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


def test_every_numeric_setting_has_an_upper_bound_and_refuses_1e23():
    # Issue 21: 1e23 hours, seconds or days overflowed dates or spun; an unbounded
    # setting is a traceback waiting for a typo.
    from lakehouse import config

    for name, bounds in config.BOUNDS.items():
        assert bounds.high is not None, name
        env = {f"LAKEHOUSE_{name.upper()}": "1" + "0" * 23}
        with pytest.raises(ConfigError, match=f"LAKEHOUSE_{name.upper()}|page size"):
            Settings.load(env=env)
        if not bounds.high_open:  # the bound itself is a value a user may set
            assert getattr(Settings.load(env={f"LAKEHOUSE_{name.upper()}": str(bounds.high)}),
                           name) == bounds.high


@pytest.mark.parametrize(("name", "value"), [("loss", "abc"), ("engine", "sparkle"),
                                             ("primary_metric", "auc")])
def test_a_text_setting_outside_its_choices_is_refused_as_settings_load(name, value):
    with pytest.raises(ConfigError, match=f"LAKEHOUSE_{name.upper()}"):
        Settings.load(env={f"LAKEHOUSE_{name.upper()}": value})


def test_the_cli_options_take_the_settings_ranges():
    from click.testing import CliRunner

    from lakehouse.cli import cli

    result = CliRunner().invoke(cli, ["ingest", "--workers", "100000"])
    assert result.exit_code == 2 and "--workers" in result.output
    assert "1<=x<=256" in result.output


# Env file (issue 23 item 5): defaults < env file < environment < options.
def env_file(tmp_path, text: str, mode: int = 0o600):
    path = tmp_path / "lakehouse.env"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_env_file_sits_between_defaults_and_the_environment(tmp_path):
    path = env_file(tmp_path, "# the daily job's settings\n"
                              "LAKEHOUSE_WORKERS=3\n"
                              "export LAKEHOUSE_API_TOKEN='s3cret token'\n"
                              "LAKEHOUSE_ALERT_WEBHOOK=\"https://hooks.example/T0/abc\"\n\n"
                              "LAKEHOUSE_PAGE_SIZE=50\n"
                              "LAKEHOUSE_K=20\n")
    s = Settings.load(env={"LAKEHOUSE_ENV_FILE": str(path), "LAKEHOUSE_PAGE_SIZE": "40"}, k=30)
    assert s.workers == 3  # file over default
    assert s.api_token == "s3cret token" and s.alert_webhook == "https://hooks.example/T0/abc"
    assert s.page_size == 40  # environment over file
    assert s.k == 30  # option over file
    assert Settings.load(env={}, env_file=path).workers == 3
    assert Settings.load(env={}).workers == 8  # no file named: none read


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o602])
def test_an_env_file_others_may_read_or_write_is_refused_without_showing_it(tmp_path, mode):
    path = env_file(tmp_path, "LAKEHOUSE_API_TOKEN=s3cret\n", mode)
    with pytest.raises(ConfigError, match=f"open to others \\(mode 0{mode:o}\\).*chmod 600") \
            as caught:
        Settings.load(env={"LAKEHOUSE_ENV_FILE": str(path)})
    assert "s3cret" not in str(caught.value)


@pytest.mark.parametrize(("text", "message"), [
    ("LAKEHOUSE_API_TOKN=s3cret\n", "line 1: unknown setting LAKEHOUSE_API_TOKN"),
    ("\nLAKEHOUSE_WORKERS=2\nHOME=/root\n", "line 3: unknown setting HOME"),
    ("LAKEHOUSE_WORKERS 2 s3cret\n", "line 1: not a NAME=value line"),
    ("LAKEHOUSE_WORKERS=many\n", "LAKEHOUSE_WORKERS\\) must be an integer"),
    ("LAKEHOUSE_STALE_HOURS=1e23\n", "LAKEHOUSE_STALE_HOURS"),
])
def test_a_bad_env_file_line_is_one_config_error_naming_the_line(tmp_path, text, message):
    path = env_file(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as caught:
        Settings.load(env={}, env_file=path)
    assert "s3cret" not in str(caught.value)


def test_a_missing_env_file_or_a_folder_is_one_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist.*unset LAKEHOUSE_ENV_FILE"):
        Settings.load(env={"LAKEHOUSE_ENV_FILE": str(tmp_path / "nope.env")})
    with pytest.raises(ConfigError, match="is not a file"):
        Settings.load(env={}, env_file=tmp_path)


def test_the_cli_reads_the_env_file_and_refuses_an_open_one(tmp_path):
    from click.testing import CliRunner

    from lakehouse.cli import cli

    lake = tmp_path / "lake"
    path = env_file(tmp_path, f"LAKEHOUSE_LAKE={lake}\n")
    result = CliRunner().invoke(cli, ["--env-file", str(path), "tables"],
                                env={"LAKEHOUSE_LAKE": None})
    assert result.exit_code == 1 and str(lake) in result.output  # "no lake at <lake>"
    path.chmod(0o644)
    result = CliRunner().invoke(cli, ["tables"], env={"LAKEHOUSE_ENV_FILE": str(path)})
    assert result.exit_code == 1
    assert result.output.startswith("Error: env file") and "chmod 600" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_the_crontab_example_carries_no_secret_and_names_an_env_file():
    text = (Path(__file__).parent.parent / "scripts" / "crontab.example").read_text()
    assignments = [line.split("=", 1)[0] for line in text.splitlines()
                   if line and not line.startswith(("#", " ")) and "=" in line.split()[0]]
    assert "LAKEHOUSE_ENV_FILE" in assignments
    for secret in ("LAKEHOUSE_API_TOKEN", "LAKEHOUSE_ALERT_WEBHOOK", "LAKEHOUSE_SERVE_TOKEN"):
        assert secret not in assignments
