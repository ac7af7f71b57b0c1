"""Training a model with several inputs and outputs, on every backend (float64, tiny data).

The step loss is ``sum_o weight_o * loss_o`` plus the penalties (docs/semantics.md, "Several
outputs"): each backend's first step loss is held to the numpy reference's, the backends to
each other over a whole run, and the evaluation's losses and prefixed history keys to the
reference computed from the model's own outputs.
"""

import itertools

import numpy as np
import pytest

import archspec
from archspec.backend import BACKENDS
from archspec.errors import DataError
from archspec.graph import resolve
from archspec.reference.forward import reference_forward
from archspec.reference.losses import loss_value, regularization_penalty, total_loss

SPEC = """
name: two-heads-small
inputs:
  a: {shape: [6]}
  b: {shape: [4]}
layers:
  - {id: left, type: dense, units: 8, activation: tanh, inputs: [a], kernel_regularizer: {l2: 0.01}}
  - {id: right, type: dense, units: 8, activation: relu, inputs: [b]}
  - {id: joined, type: concatenate, inputs: [left, right]}
  - {id: kind, type: dense, units: 3, activation: softmax, inputs: [joined]}
  - {id: size, type: dense, units: 1, inputs: [joined]}
outputs: [kind, size]
training:
  loss: {kind: sparse_categorical_crossentropy, size: mse}
  loss_weights: {kind: 1.0, size: 0.25}
  metrics: {kind: [accuracy, f1], size: [mae]}
  optimizer: {type: adam, learning_rate: 0.01}
  batch_size: 16
  epochs: 3
  seed: 3
"""


def arrays(n, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(n, 6)), rng.normal(size=(n, 4))
    kind = np.argmax(a[:, :3] + b[:, :1], axis=1).astype(np.int64)
    size = (a.sum(axis=1) - b[:, 1]).reshape(-1, 1)
    return {"a": a, "b": b}, {"kind": kind, "size": size}


DATA = {"train": arrays(96, 0), "validation": arrays(32, 1)}


def weighted(spec):
    return [(spec.training.loss_of(o), spec.training.loss_weight_of(o)) for o in ("kind", "size")]


def reference_loss(spec, weights, x, y, sample_weight=None):
    """The reference's step loss of ``x``: the weighted sum of the outputs' losses plus the penalties."""
    graph = resolve(spec)
    tensors = reference_forward(graph, weights, x).tensors
    parts = [
        (
            spec.training.loss_of(head.output),
            tensors[head.logits],
            y[head.output],
            head.from_logits,
            spec.training.loss_weight_of(head.output),
        )
        for head in graph.heads
    ]
    penalties = {
        name: {"l1": p.regularizer.l1, "l2": p.regularizer.l2}
        for name, p in graph.parameters.items()
        if p.regularizer is not None
    }
    return total_loss(parts, sample_weight=sample_weight) + regularization_penalty(weights, penalties)


@pytest.fixture(scope="module")
def runs():
    spec = archspec.load(SPEC)
    return spec, {b: archspec.train(spec, backend=b, data=DATA, dtype="float64") for b in BACKENDS}


def test_the_backends_follow_the_same_weighted_sum(runs):
    _, results = runs
    first, *others = BACKENDS
    a = results[first].step_losses
    assert len(a) == 18  # 6 batches of 16, 3 epochs
    assert a[-1] < a[0]
    for other in others:
        b = results[other].step_losses
        assert len(b) == 18, other
        assert np.max(np.abs(a - b) / np.abs(a)) <= 1e-12, f"{other} vs {first}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_first_step_loss_is_the_reference_weighted_sum(runs, backend):
    spec, results = runs
    from archspec.training.order import step_indices

    initial = archspec.compile(spec, backend="torch", dtype="float64").get_weights()
    first = step_indices(0, spec.training.seed, 96, spec.training.batch_size, spec.training.shuffle)
    x, y = DATA["train"]
    batch_x = {name: array[first] for name, array in x.items()}
    batch_y = {name: array[first] for name, array in y.items()}
    expected = reference_loss(spec, initial, batch_x, batch_y)
    assert results[backend].step_losses[0] == pytest.approx(expected, rel=1e-12)
    # Not one output's loss alone: the weights matter.
    assert (
        abs(
            expected
            - reference_loss(
                spec.model_copy(update={"training": spec.training.model_copy(update={"loss_weights": None})}),
                initial,
                batch_x,
                batch_y,
            )
        )
        > 1e-3
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_history_keys_are_prefixed_by_output(runs, backend):
    _, results = runs
    row = results[backend].history[-1]
    expected = {
        "loss",
        "learning_rate",
        "train_kind_loss",
        "train_kind_accuracy",
        "train_kind_f1",
        "train_size_loss",
        "train_size_mae",
        "validation_loss",
        "validation_kind_loss",
        "validation_kind_accuracy",
        "validation_kind_f1",
        "validation_size_loss",
        "validation_size_mae",
    }
    assert expected <= set(row), expected - set(row)
    assert "validation_accuracy" not in row and "train_accuracy" not in row


@pytest.mark.parametrize("backend", BACKENDS)
def test_evaluation_reports_each_output_and_their_weighted_sum(runs, backend):
    spec, results = runs
    result = results[backend]
    final = result.final["validation"]
    x, y = DATA["validation"]
    predictions = result.model.predict(x)
    assert set(predictions) == {"kind", "size"}
    weights = result.model.get_weights()
    graph = resolve(spec)
    tensors = reference_forward(graph, weights, x).tensors
    kind_head, size_head = graph.heads
    kind_loss = loss_value("sparse_categorical_crossentropy", tensors[kind_head.logits], y["kind"], from_logits=True)
    size_loss = loss_value("mse", tensors[size_head.logits], y["size"], from_logits=False)
    assert final["kind_loss"] == pytest.approx(kind_loss, rel=1e-10)
    assert final["size_loss"] == pytest.approx(size_loss, rel=1e-10)
    assert final["loss"] == pytest.approx(kind_loss + 0.25 * size_loss, rel=1e-10)
    accuracy = np.mean(np.argmax(predictions["kind"], axis=1) == y["kind"])
    assert final["kind_accuracy"] == pytest.approx(accuracy)
    assert final["size_mae"] == pytest.approx(np.mean(np.abs(predictions["size"] - y["size"])))
    assert result.history[-1]["validation_size_mae"] == final["size_mae"]


def test_one_loss_for_every_output_and_one_metric_list(tmp_path):
    text = (
        SPEC.replace("loss: {kind: sparse_categorical_crossentropy, size: mse}", "loss: mse")
        .replace("units: 3, activation: softmax", "units: 1")
        .replace("metrics: {kind: [accuracy, f1], size: [mae]}", "metrics: [mae]")
        .replace("loss_weights: {kind: 1.0, size: 0.25}", "loss_weights: {kind: 2.0, size: 0.5}")
    )
    spec = archspec.load(text)
    (x, y), (xv, yv) = DATA["train"], DATA["validation"]
    as_values = {"kind": y["kind"].astype(np.float64).reshape(-1, 1), "size": y["size"]}
    data = {"train": (x, as_values), "validation": (xv, {"kind": yv["kind"].reshape(-1, 1) * 1.0, "size": yv["size"]})}
    result = archspec.train(spec, backend="torch", data=data, dtype="float64", max_steps=6)
    final = result.final["validation"]
    assert set(final) == {"loss", "kind_loss", "kind_mae", "size_loss", "size_mae"}
    assert final["loss"] == pytest.approx(2.0 * final["kind_loss"] + 0.5 * final["size_loss"], rel=1e-12)
    initial = archspec.compile(spec, backend="torch", dtype="float64").get_weights()
    from archspec.training.order import step_indices

    first = step_indices(0, spec.training.seed, 96, spec.training.batch_size, spec.training.shuffle)
    batch_x = {k: v[first] for k, v in x.items()}
    batch_y = {k: v[first] for k, v in as_values.items()}
    assert result.step_losses[0] == pytest.approx(reference_loss(spec, initial, batch_x, batch_y), rel=1e-12)


def test_sample_weights_weigh_every_output(tmp_path):
    spec = archspec.load(SPEC)
    x, y = DATA["train"]
    weights = np.linspace(0.5, 2.0, 96)
    result = archspec.train(spec, backend="torch", data=(x, y, weights), dtype="float64", max_steps=1)
    from archspec.training.order import step_indices

    initial = archspec.compile(spec, backend="torch", dtype="float64").get_weights()
    first = step_indices(0, spec.training.seed, 96, spec.training.batch_size, spec.training.shuffle)
    expected = reference_loss(
        spec, initial, {k: v[first] for k, v in x.items()}, {k: v[first] for k, v in y.items()}, weights[first]
    )
    assert result.step_losses[0] == pytest.approx(expected, rel=1e-12)


def test_early_stopping_watches_a_prefixed_key():
    text = SPEC.replace("epochs: 3", "epochs: 8\n  early_stopping: {monitor: validation_size_mae, patience: 1}")
    result = archspec.train(archspec.load(text), backend="torch", data=DATA, dtype="float64")
    values = [row["validation_size_mae"] for row in result.history]
    stopped = result.config["stopped"] != "epochs"
    # Either it ran out of epochs improving every time, or it stopped after an epoch that did not improve.
    assert stopped == any(b >= a for a, b in itertools.pairwise(values))


@pytest.mark.parametrize("backend", BACKENDS)
def test_resume_is_exact_for_two_outputs(tmp_path, backend):
    spec = archspec.load(SPEC)
    whole = archspec.train(spec, backend=backend, data=DATA, dtype="float64", out=tmp_path / "whole")
    archspec.train(spec, backend=backend, data=DATA, dtype="float64", max_steps=8, out=tmp_path / "part")
    resumed = archspec.train(spec, backend=backend, data=DATA, resume=tmp_path / "part", max_steps=18)
    assert np.array_equal(resumed.step_losses, whole.step_losses)
    for name, value in whole.model.get_weights().items():
        assert np.array_equal(resumed.model.get_weights()[name], value), name
    assert resumed.history[-1]["validation_kind_accuracy"] == whole.history[-1]["validation_kind_accuracy"]


def test_resume_refuses_other_data_for_an_output(tmp_path):
    spec = archspec.load(SPEC)
    archspec.train(spec, backend="torch", data=DATA, dtype="float64", max_steps=8, out=tmp_path / "part")
    x, y = DATA["train"]
    changed = {"train": (x, {**y, "size": y["size"] + 1.0}), "validation": DATA["validation"]}
    with pytest.raises(Exception, match="data"):
        archspec.train(spec, backend="torch", data=changed, resume=tmp_path / "part", max_steps=18)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            (DATA["train"][0], DATA["train"][1]["kind"]),
            r"train.y: expected a dict of arrays by output name \(kind, size\), received one array",
        ),
        (
            (DATA["train"][0], {"kind": DATA["train"][1]["kind"]}),
            r"train.y: expected an array for every model output \(kind, size\), missing 'size'",
        ),
        (
            (DATA["train"][0], {**DATA["train"][1], "sise": DATA["train"][1]["size"]}),
            r"train.y: expected arrays for the model's outputs \(kind, size\), received 'sise'",
        ),
        (
            ({"a": DATA["train"][0]["a"]}, DATA["train"][1]),
            r"train.x: expected an array for every model input \(a, b\), missing 'b'",
        ),
        (
            ({"a": DATA["train"][0]["a"], "b": DATA["train"][0]["a"]}, DATA["train"][1]),
            r"train.x\['b'\]: input 'b' expected samples of shape \[4\], received \[6\]",
        ),
        (
            (DATA["train"][0], {**DATA["train"][1], "kind": DATA["train"][1]["kind"] + 3}),
            r"train.y\['kind'\]: expected class labels 0..2, received 5 at index \(0,\)",
        ),
        (
            (DATA["train"][0], {**DATA["train"][1], "size": DATA["train"][1]["size"][:50]}),
            r"train: expected x and y with the same number of samples, received x\['a'\] has 96, x\['b'\] has 96, y\['kind'\] has 96, y\['size'\] has 50",
        ),
    ],
)
def test_data_that_does_not_fit_the_outputs_is_refused(data, message):
    with pytest.raises(DataError, match=message):
        archspec.train(archspec.load(SPEC), backend="torch", data=data, max_steps=1)


def test_an_npz_file_feeds_every_input_and_output(tmp_path):
    (x, y), (xv, yv) = DATA["train"], DATA["validation"]
    np.savez(tmp_path / "train.npz", first=x["a"], second=x["b"], label=y["kind"], value=y["size"])
    np.savez(tmp_path / "valid.npz", first=xv["a"], second=xv["b"], label=yv["kind"], value=yv["size"])
    data = (
        "data: {format: npz, train: train.npz, validation: valid.npz,"
        " inputs: {a: first, b: second}, targets: {kind: label, size: value}}\n"
    )
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC.lstrip() + data)
    from_files = archspec.train(path, backend="torch", dtype="float64", max_steps=6, out=tmp_path / "run")
    # normalization: none (the default) keeps the arrays as given, so the run is the arrays' run
    from_arrays = archspec.train(archspec.load(SPEC), backend="torch", data=DATA, dtype="float64", max_steps=6)
    assert np.array_equal(from_files.step_losses, from_arrays.step_losses)
    assert from_files.final["validation"] == from_arrays.final["validation"]
    # The files are fingerprinted: a changed file is refused on resume, naming it.
    np.savez(tmp_path / "train.npz", first=x["a"], second=x["b"], label=y["kind"], value=y["size"] * 2)
    with pytest.raises(DataError, match="train.npz: changed since the checkpoint"):
        archspec.train(path, backend="torch", resume=tmp_path / "run", max_steps=12)


def test_an_npz_file_must_name_an_array_for_every_output(tmp_path):
    from archspec.errors import SpecError

    path = tmp_path / "spec.yaml"
    path.write_text(SPEC.lstrip() + "data: {format: npz, path: d.npz, inputs: {a: x, b: z}, targets: {kind: y}}\n")
    with pytest.raises(SpecError, match="expected an array for every model output, received none for 'size'"):
        archspec.load(path)
    # A csv table feeds several inputs and outputs only through the mappings, which say which columns.
    path.write_text(SPEC.lstrip() + "data: {format: csv, path: d.csv, target: y}\n")
    with pytest.raises(SpecError, match="expected target as {OUTPUT: column} for the model's outputs 'kind', 'size'"):
        archspec.load(path)


def test_tensorboard_names_carry_the_output(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = archspec.train(archspec.load(SPEC), backend="torch", data=DATA, dtype="float64", logdir=tmp_path / "logs")
    events = EventAccumulator(str(tmp_path / "logs"), size_guidance={"scalars": 0})
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"epoch/validation_kind_accuracy", "epoch/validation_size_mae", "epoch/train_kind_loss"} <= tags
    assert {"final/validation_kind_loss", "final/validation_loss", "final/train_size_mae"} <= tags
    logged = [s.value for s in events.Scalars("epoch/validation_size_mae")]
    expected = [row["validation_size_mae"] for row in result.history]
    np.testing.assert_allclose(logged, expected, rtol=1e-6)  # event files hold float32
