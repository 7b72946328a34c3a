"""The one reader of versioned JSON files (nas/json_files.py): every refusal is one
IncompatibleFileError line that names the path and what was expected, and every reader of a
versioned file (samples sidecar, run config, predictor card, searcher state, export manifest)
goes through it."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nas.errors import IncompatibleFileError, UserError
from nas.json_files import read_json_object, read_versioned_json

WHAT = "a test sidecar"


def read(path, **kw):
    return read_versioned_json(path, WHAT, format=kw.pop("format", "t"),
                               versions=kw.pop("versions", (1, 2)), **kw)


def refusal(path, match: str, **kw) -> str:
    with pytest.raises(IncompatibleFileError, match=match) as info:
        read(path, **kw)
    line = str(info.value)
    assert str(path) in line and "\n" not in line
    assert isinstance(info.value, UserError)
    return line


def test_a_good_file_is_returned_as_its_object(tmp_path):
    path = tmp_path / "ok.json"
    path.write_text(json.dumps({"format": "t", "format_version": 2, "x": [1]}))
    assert read(path) == {"format": "t", "format_version": 2, "x": [1]}
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())  # a BOM an editor added
    assert read(path)["x"] == [1]


@pytest.mark.parametrize(("content", "match"), [
    (b"{\"format\": \"t\", \"format_ver", "damaged, not a test sidecar .invalid JSON"),
    (b"\xff\xfe\x00garbage", "damaged, not a test sidecar"),
    (b"", "damaged"),
    (b"[1, 2]", r"expected a JSON object, found list"),
    (b"\"text\"", r"expected a JSON object, found str"),
    (b"{\"format\": \"other\", \"format_version\": 1}", r"expected format 't', found 'other'"),
    (b"{\"format_version\": 1}", r"expected format 't', found no format tag"),
    (b"{\"format\": \"t\"}", r"without a format version .expected a 'format_version' field"),
    (b"{\"format\": \"t\", \"format_version\": 3}", r"version 3; this nas reads version 1, 2 "
                                                  r"\(written by a newer nas\?\)"),
    (b"{\"format\": \"t\", \"format_version\": 0}", r"version 0; this nas reads"),
    (b"{\"format\": \"t\", \"format_version\": \"1\"}", r"version '1'; this nas reads"),
    (b"{\"format\": \"t\", \"format_version\": true}", r"version True; this nas reads"),
])
def test_each_refusal_is_one_line_naming_the_path(tmp_path, content, match):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    refusal(path, match)


def test_missing_files_and_folders_are_refused(tmp_path):
    refusal(tmp_path / "none.json", "missing; expected a test sidecar")
    refusal(tmp_path, "a folder; expected a test sidecar")


def test_a_hint_follows_the_damaged_line(tmp_path):
    path = tmp_path / "cut.json"
    path.write_text("{\"a\": ")
    with pytest.raises(IncompatibleFileError, match=r"damaged.*; remove it"):
        read_json_object(path, "a plan", hint="; remove it")


def test_an_untagged_format_and_a_version_carried_in_the_tag(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"manifest_version": 1}))
    assert read(path, format=None, version_key="manifest_version", versions=(1,))
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"format": "t/1", "a": 1}))
    assert read(old, tagged_versions={"t/1": 1})["a"] == 1
    refusal(old, "expected format 't', found 't/1'")  # not read without the mapping
    refusal(old, "version 1; this nas reads version 2", tagged_versions={"t/1": 1}, versions=(2,))


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3), max_leaves=6))
def test_no_json_value_but_an_object_is_read(tmp_path_factory, value):
    path = tmp_path_factory.mktemp("v") / "v.json"
    path.write_text(json.dumps(value))
    with pytest.raises(IncompatibleFileError, match="expected a JSON object"):
        read_json_object(path, WHAT)


def _sidecar(path):
    from nas.sample.store import read_sidecar

    return read_sidecar(path.with_suffix(".csv"))


def _run_config(path):
    from nas.train.rundir import read_config

    return read_config(path.parent)


def _card(path):
    from predictors.persistence import read_card

    return read_card(path.parent)


def _state(path):
    from nas.search.state import read_state

    return read_state(path)


def _manifest(path):
    from nas.export.model_card import _read_manifest

    return _read_manifest(path.parent)


@pytest.mark.parametrize(("reader", "name"), [
    (_sidecar, "samples.json"), (_run_config, "config.json"), (_card, "card.json"),
    (_state, "state.json"), (_manifest, "manifest.json")])
@pytest.mark.parametrize(("content", "match"), [
    ("{\"format\": ", "damaged"), ("[]", "expected a JSON object"),
    ("{\"format\": \"nas-samples\", \"format_version\": 99, \"format_versio\": 1}",
     "format|version")])
def test_every_versioned_file_is_read_by_the_one_reader(tmp_path, reader, name, content, match):
    """The readers of the project's versioned files refuse damage, non-objects and foreign or
    unknown versions with the reader's one line."""
    from nas.sample.store import sidecar_path

    path = tmp_path / name
    if reader is _sidecar:
        path = sidecar_path(tmp_path / "samples.csv")
    path.write_text(content)
    with pytest.raises(IncompatibleFileError, match=match) as info:
        reader(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
