"""parse_yaml: what it accepts, where it places things, and what it refuses."""

import time

import pytest

from archspec.errors import SpecError
from archspec.spec.source import MAX_SOURCE_CHARS, parse_yaml, suggest

SPEC = """\
name: mlp
layers:
  - type: dense
    units: 64
  - {type: dropout, rate: 0.5}
training:
  epochs: 3
"""


def refusal(source, filename="net.yaml"):
    with pytest.raises(SpecError) as caught:
        parse_yaml(source, filename)
    return caught.value.problems


def test_parses_plain_data_and_keeps_filename():
    document = parse_yaml(SPEC, "net.yaml")
    assert document.filename == "net.yaml"
    assert document.data == {
        "name": "mlp",
        "layers": [{"type": "dense", "units": 64}, {"type": "dropout", "rate": 0.5}],
        "training": {"epochs": 3},
    }


def test_dates_and_odd_scalars_stay_strings():
    document = parse_yaml("created: 2024-01-31\nstamp: 2001-12-14t21:59:43.10-05:00\nsign: =\n")
    assert document.data == {"created": "2024-01-31", "stamp": "2001-12-14t21:59:43.10-05:00", "sign": "="}


def test_accepts_utf8_bytes_with_bom():
    assert parse_yaml("\ufeffname: é\n".encode()).data == {"name": "é"}


@pytest.mark.parametrize(
    ("loc", "key", "expected"),
    [
        ((), False, (1, 1)),
        (("name",), False, (1, 7)),
        (("name",), True, (1, 1)),
        (("layers",), False, (3, 3)),
        (("layers", 0), False, (3, 5)),
        (("layers", 0, "dense", "units"), False, (4, 12)),  # the tag is skipped
        (("layers", 0, "dense", "units"), True, (4, 5)),
        (("layers", 1, "dropout", "rate"), False, (5, 27)),
        (("layers", 0, "dense", "activation"), False, (3, 5)),  # missing: the mapping
        (("layers", 0, "conv", "units"), False, (3, 5)),  # wrong tag: stop at the mapping
        (("layers", 9), False, (3, 3)),  # no such item: the list
        (("training", "epochs"), False, (7, 11)),
        (("nothing", "here"), False, (1, 1)),
    ],
)
def test_locate(loc, key, expected):
    assert parse_yaml(SPEC).locate(loc, key=key) == expected


def test_locate_counts_characters_not_bytes():
    document = parse_yaml("name: é€\nunits: 3\nother: [ü, x]\n")
    assert document.locate(("other", 1)) == (3, 12)


def test_problem_is_placed_in_file():
    assert str(parse_yaml(SPEC, "net.yaml").problem("bad", ("training", "epochs"))) == "net.yaml:7:11: bad"


def test_refuses_bytes_that_are_not_utf8():
    (problem,) = refusal(b"name: mlp\nunits: \xff\xfe\n")
    assert "expected UTF-8 text" in problem.message
    assert (problem.line, problem.column) == (2, 8)


@pytest.mark.parametrize("source", ["", "   \n", "# only a comment\n", b""])
def test_refuses_empty_document(source):
    (problem,) = refusal(source)
    assert problem.message.startswith("empty document")
    assert str(problem).startswith("net.yaml:1:1: ")


@pytest.mark.parametrize(
    ("source", "received"),
    [("- a\n- b\n", "a list"), ("just text\n", "a string"), ("3\n", "an integer"), ("null\n", "null")],
)
def test_refuses_non_mapping_top_level(source, received):
    (problem,) = refusal(source)
    assert problem.message == f"expected a mapping of spec fields at the top level, received {received}"


def test_syntax_error_is_located():
    (problem,) = refusal("name: mlp\nlayers:\n  - type: dense\n    units: 3: 4\n")
    assert problem.message.startswith("invalid YAML: mapping values are not allowed")
    assert (problem.line, problem.column) == (4, 13)


def test_unclosed_flow_list_is_located():
    (problem,) = refusal("name: mlp\nlayers: [a, b\n")
    assert problem.message.startswith("invalid YAML")
    assert problem.line == 3


def test_duplicate_keys_are_all_reported_at_the_second_one():
    source = "name: a\nlayers:\n  - type: dense\n    units: 3\n    units: 4\nname: b\n"
    problems = refusal(source)
    assert [str(p) for p in problems] == [
        "net.yaml:5:5: duplicate key 'units' (first defined at line 4)",
        "net.yaml:6:1: duplicate key 'name' (first defined at line 1)",
    ]


def test_keys_equal_after_parsing_are_duplicates():
    (problem,) = refusal("a: {1: x, 0x1: y}\n")
    assert problem.message == "duplicate key '0x1' (first defined at line 1)"


def test_merge_keys_may_be_overridden():
    document = parse_yaml("base: &b {units: 3, bias: true}\nlayer:\n  <<: *b\n  units: 4\n")
    assert document.data["layer"] == {"units": 4, "bias": True}


def test_billion_laughs_is_refused_quickly():
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    started = time.perf_counter()
    (problem,) = refusal("\n".join(lines) + "\n")
    assert time.perf_counter() - started < 0.5
    assert problem.message.startswith("too many alias expansions")
    assert problem.line is not None


def test_few_aliases_are_fine():
    document = parse_yaml("a: &x [1, 2]\nb: *x\nc: *x\n")
    assert document.data == {"a": [1, 2], "b": [1, 2], "c": [1, 2]}


def test_recursive_alias_is_refused():
    (problem,) = refusal("a: &loop [1, *loop]\n")
    assert "refers to a node that contains it" in problem.message
    assert (problem.line, problem.column) == (1, 14)


def test_deep_nesting_is_refused():
    (problem,) = refusal("a: " + "[" * 500 + "]" * 500 + "\n")
    assert problem.message.startswith("nesting is too deep")


def test_oversized_input_is_refused_before_parsing():
    started = time.perf_counter()
    (problem,) = refusal("a" * (MAX_SOURCE_CHARS + 1))
    assert time.perf_counter() - started < 0.5
    assert problem.message.startswith("spec is too large")


def test_several_documents_are_refused():
    (problem,) = refusal("name: a\n---\nname: b\n")
    assert problem.message == "expected a single YAML document, found a second one here"
    assert problem.line == 2


def test_non_string_top_level_key_is_refused():
    (problem,) = refusal("name: a\n3: b\n")
    assert problem.message == "expected text keys at the top level, received an integer key 3"
    assert (problem.line, problem.column) == (2, 1)


@pytest.mark.parametrize(
    "source",
    [
        "a: !!python/object/apply:os.system [echo hi]\n",
        "a: !!python/name:os.system\n",
        "a: !!binary aGk=\n",
        "a: !!set {x}\n",
        "a: !!omap [x: 1]\n",
        "a: !custom 3\n",
        "a: !!int nope\n",
        "a: " + "9" * 5000 + "\n",  # beyond Python's int-from-text limit
    ],
)
def test_refuses_tags_and_values_beyond_plain_data(source):
    (problem,) = refusal(source)
    assert problem.message.startswith("invalid YAML")
    assert (problem.line, problem.column) == (1, 4)


def test_refuses_control_characters():
    (problem,) = refusal("a: 1\nb: \x07\n")
    assert problem.message == "invalid YAML: character U+0007 is not allowed"
    assert (problem.line, problem.column) == (2, 4)


def test_suggest():
    assert suggest("unitz", ["units", "type", "activation"]) == "did you mean 'units'?"
    assert suggest("dens", ["dense", "dropout"]) == "did you mean 'dense'?"
    assert suggest("xyz", ["units", "type"]) is None
    assert suggest("units", []) is None
