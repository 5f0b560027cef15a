"""data/jsonfile.py: a JSON object read member by member from a file, one array member element by
element, a chunk of text at a time: the same values as json.load for any text and any chunk size,
json's own errors for anything else, and a saved run's memory that does not grow with its steps."""

import io
import json
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lstm_inspect.data.jsonfile import Items, NotAnObject, members

SCALARS = st.none() | st.booleans() | st.integers(-10**30, 10**30) | st.floats(allow_nan=False,
                                                                               allow_infinity=False) | st.text()
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner,
                                                                                            max_size=4), max_leaves=12)
OBJECTS = st.dictionaries(st.text(max_size=6), VALUES, max_size=5)


def read(text, chunk=None):
    """What members() gives, the streamed array as a list."""
    found = {}
    for key, value in members(io.StringIO(text), "steps", room=lambda characters: None, chunk=chunk):
        found[key] = ("streamed", list(value)) if isinstance(value, Items) else value
    return found


def expected(value):
    return {key: ("streamed", item) if key == "steps" and isinstance(item, list) else item
            for key, item in value.items()}


@settings(max_examples=300, deadline=None)
@given(OBJECTS, st.lists(VALUES, max_size=6), st.integers(1, 40), st.sampled_from([None, 0, 2]),
       st.sampled_from([None, (",", ":")]))
def test_any_object_reads_as_json_load_reads_it_whatever_the_chunk(value, steps, chunk, indent, separators):
    text = json.dumps({**value, "steps": steps}, indent=indent, separators=separators)
    assert read(text, chunk) == expected(json.loads(text))


@settings(max_examples=300, deadline=None)
@given(OBJECTS, st.lists(VALUES, min_size=1, max_size=4), st.integers(1, 16), st.data())
def test_text_cut_short_anywhere_is_an_error_never_a_value(value, steps, chunk, data):
    text = json.dumps({**value, "steps": steps})
    cut = data.draw(st.integers(0, len(text) - 1))
    with pytest.raises(json.JSONDecodeError):
        read(text[:cut], chunk)


@pytest.mark.parametrize(("text", "says"), [
    ('{"a": 1, "a": 2}', "Expecting each key once, not 'a' again"),
    ('{"a": 1} {"b": 2}', "Extra data"),
    ('{"a": 1,}', "Expecting"),
    ('{"a" 1}', "Expecting ':' after a key"),
    ('{"steps": [1 2]}', "Expecting ',' or ']'"),
    ('{"a": [1, 2] "b": 3}', "Expecting ',' or '}'"),
    ('{1: 2}', "Expecting"),
    ("", "Expecting value"),
    ("hello", "Expecting value"),
])
def test_what_is_no_json_object_is_json_s_own_error(text, says):
    with pytest.raises(json.JSONDecodeError, match=says):
        read(text)


def test_json_that_is_no_object_says_so_and_the_streamed_array_may_be_left_unread():
    with pytest.raises(NotAnObject):
        read("[1, 2, 3]")
    walked = [key for key, _ in members(io.StringIO('{"steps": [1, [2, 3], {"a": 4}], "b": 5}'), "steps",
                                        room=lambda characters: None)]
    assert walked == ["steps", "b"]  # the elements read past when the caller takes none of them


def test_a_value_longer_than_the_text_held_asks_for_room_first():
    asked = []
    text = json.dumps({"short": [1, 2], "steps": [[0] * 3] * 5, "long": "y" * 100})
    found = {key: list(value) if isinstance(value, Items) else value
             for key, value in members(io.StringIO(text), "steps", room=asked.append, chunk=8)}
    assert found == json.loads(text)
    assert asked and all(characters >= 16 for characters in asked) and max(asked) >= 100


def test_a_saved_run_is_read_back_in_memory_that_does_not_grow_with_its_steps(tmp_path, monkeypatch):
    from lstm_inspect.data import jsonfile
    from lstm_inspect.keras.records import load

    monkeypatch.setattr(jsonfile, "CHUNK", 1 << 16)

    def run(steps):
        path = tmp_path / f"run{steps}.json"
        head = {"schema": 1, "observed_by": "StateProbe", "spec": {"samples": 4, "timesteps": 3, "features": 1,
                                                                   "batch_size": 4, "stateful": True}}
        items = [{"call": "predict", "phase": "predict", "epoch": 0, "batch": batch, "samples": [0, 1, 2, 3],
                  "start": ["zeros"] * 4 if batch == 0 else [f"predict b{batch - 1}/slot {j}" for j in range(4)]}
                 for batch in range(steps)]
        path.write_text(json.dumps({**head, "steps": items}))
        tracemalloc.start()
        saved = load(str(path))
        shown = sum(1 for _ in saved.results())
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert shown == saved.tally.steps == steps
        return peak, path.stat().st_size

    # Both many chunks of text long: what they hold is a chunk or two, and one step.
    small, size = run(3_000)
    large, _ = run(12_000)
    assert size > 8 * 2**16
    assert large < small + 2**18, (small, large)  # held whole, 9,000 steps more would take some 10 MiB more


@pytest.mark.parametrize("text, chunk, message", [
    ('{"steps": [1, 2', None, "Expecting ',' or ']' between the elements of an array at the end of the file"),
    ('{"steps": [1, 2 3]}', None, "Expecting ',' or ']' between the elements of an array at char 16"),
    ('{"steps": [1, 2 3]}', 4, "Expecting ',' or ']' between the elements of an array at char 16"),
    ('{"steps": [1, {"a": tru}]}', 5, "Expecting value at char 20"),  # found in a later chunk than the first
])
def test_a_damaged_file_is_refused_where_it_is_damaged(text, chunk, message):
    with pytest.raises(json.JSONDecodeError) as raised:
        read(text, chunk)
    assert raised.value.msg == message
