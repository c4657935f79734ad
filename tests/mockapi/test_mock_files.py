"""``lakehouse mock-api --data DIR``: any data set from files, served through the contract."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests
from click.testing import CliRunner

from lakehouse.cli import cli
from lakehouse.errors import ConfigError
from lakehouse.mockapi import server
from lakehouse.mockapi.files import load_dir
from lakehouse.mockapi.testing import running_mock_api

T = "2011-05-01T00:00:00.000000"
USER = {"id": 1, "first_name": "a", "last_name": "b", "email": "e", "gender": "Male",
        "favorite_genres": "Rock", "created_at": T, "updated_at": T}
TRACK = {"id": 7, "name": "n", "artist": "x", "songwriters": "s", "duration": "00:00",
         "genres": "unknown", "album": "a", "created_at": T, "updated_at": T}
LISTEN = {"user_id": 1, "items": [7, 7, 99], "created_at": T, "updated_at": T}


def write(folder, **rows):
    folder.mkdir(exist_ok=True)
    data = {"users": [USER], "tracks": [TRACK], "listen_history": [LISTEN], **rows}
    for name, items in data.items():
        if items is not None:
            (folder / f"{name}.jsonl").write_text(
                "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in items))
    return folder


def test_jsonl_folder_is_served_as_is_through_the_contract(tmp_path):
    tables = load_dir(write(tmp_path / "d", listen_history=[
        LISTEN, {"user_id": None, "items": None, "created_at": T, "updated_at": T}]))
    with running_mock_api(tables=tables, admin=False) as api:
        page = requests.get(f"{api.url}/listen_history", params={"size": 1, "page": 2}).json()
        assert page == {"items": [{"user_id": None, "items": None, "created_at": T,
                                   "updated_at": T}], "total": 2, "page": 2, "size": 1,
                        "pages": 2}
        first = requests.get(f"{api.url}/listen_history").json()["items"][0]
        assert first["items"] == [7, 7, 99]  # duplicates and dangling ids kept
        assert requests.get(f"{api.url}/tracks").json()["items"] == [TRACK]


def test_parquet_with_real_timestamps_and_no_times_in_jsonl(tmp_path):
    folder = write(tmp_path / "d", users=None)
    stamp = pa.array([1_304_208_000_000_000], pa.timestamp("us", "UTC"))
    pq.write_table(pa.table({k: [v] for k, v in USER.items() if "_at" not in k})
                   .append_column("created_at", stamp).append_column("updated_at", stamp),
                   folder / "users.parquet")
    (folder / "tracks.jsonl").write_text(json.dumps(
        {k: v for k, v in TRACK.items() if "_at" not in k}) + "\n")
    tables = load_dir(folder)
    assert tables["users"].column("created_at").to_pylist() == [T]
    served = tables["tracks"].column("created_at").to_pylist()[0]
    assert len(served) == len(T) and served[10] == "T"  # the folder's time, contract format
    assert tables["tracks"].column("id").to_pylist() == [7]


@pytest.mark.parametrize(("rows", "message"), [
    ({"users": ["{not json"]}, "users.jsonl line 1 is not JSON"),
    ({"users": ["[1, 2]"]}, "users.jsonl line 1 is not a JSON object"),
    ({"users": [{**USER, "age": 3}]}, "field(s) age are not in the users contract"),
    ({"tracks": [{"id": 1}]}, "field(s) name, artist"),
    ({"users": [{**USER, "id": "x"}]}, "field id is not an integer"),
    ({"users": [USER, {**USER, "id": "2"}]}, "field id mixes types"),
    ({"users": [{**USER, "id": None}]}, "record 1 has no id"),
    ({"listen_history": [{**LISTEN, "items": ["a"]}]}, "field items is not a list of integers"),
    ({"tracks": [{**TRACK, "name": 5}]}, "field name is not a string"),
    ({"listen_history": None}, "no listen_history file"),
])
def test_bad_files_are_one_line_config_errors(tmp_path, rows, message):
    with pytest.raises(ConfigError) as caught:
        load_dir(write(tmp_path / "d", **rows))
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_two_files_for_one_endpoint_and_missing_folder(tmp_path):
    folder = write(tmp_path / "d")
    (folder / "users.parquet").write_bytes(b"PAR1")
    with pytest.raises(ConfigError, match="several users files"):
        load_dir(folder)
    with pytest.raises(ConfigError, match="does not exist"):
        load_dir(tmp_path / "nope")


def test_cli_data_option_reaches_the_server_and_bad_data_is_one_line(tmp_path, monkeypatch):
    calls = {}
    monkeypatch.setattr(server, "serve", lambda config, **kw: calls.update(kw))
    folder = write(tmp_path / "d")
    assert CliRunner().invoke(cli, ["mock-api", "--data", str(folder)]).exit_code == 0
    assert calls["data"] == str(folder)
    monkeypatch.undo()
    (folder / "users.jsonl").write_text("oops\n")
    result = CliRunner().invoke(cli, ["mock-api", "--data", str(folder), "--port", "0"])
    assert result.exit_code == 1
    assert result.output == (f"Error: {folder}/users.jsonl line 1 is not JSON (Expecting value); "
                             "write one JSON object per line\n")
