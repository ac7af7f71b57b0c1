"""Property: any document, however mangled, loads cleanly or fails with a SpecError."""

from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import archspec
from archspec.errors import SpecError

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))
DOCUMENTS = [yaml.safe_load(p.read_text()) for p in CONFIGS]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from(["dense", "lstm", "relu", "same", "x", "adam", "-1", "1e9"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from paths(value, prefix + (index,))


def mutate(document, path, action, value):
    import copy

    document = copy.deepcopy(document)
    if not path:
        return value if action == "replace" else document
    parent = document
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if action == "replace":
        parent[last] = value
    elif action == "delete":
        del parent[last]
    elif action == "insert" and isinstance(parent, dict):
        parent[f"extra_{last}"] = value
    elif action == "insert" and isinstance(parent, list):
        parent.insert(last, value)
    return document


@st.composite
def mutated_documents(draw):
    document = draw(st.sampled_from(DOCUMENTS))
    for _ in range(draw(st.integers(1, 3))):
        options = list(paths(document))
        path = draw(st.sampled_from(options))
        document = mutate(document, path, draw(st.sampled_from(["replace", "delete", "insert"])), draw(values))
    return document


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_documents())
def test_mutated_documents_validate_or_fail_cleanly(document):
    text = yaml.safe_dump(document, sort_keys=False)
    try:
        archspec.load(text)
    except SpecError as error:
        assert error.problems
        for problem in error.problems:
            assert problem.message and "\n" not in str(problem)
            assert problem.line is None or problem.line >= 1


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300))
def test_random_input_fails_cleanly(source):
    try:
        archspec.load(source if isinstance(source, bytes) else source + "\n")
    except SpecError:
        pass
