"""Every bad data file is one DataError line naming the file (and row and column, or image),
exit code 1, no traceback, nothing written, and no framework loaded."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
from file_fixtures import write_series_csv

from archspec.cli import main

SPEC = """
name: files
inputs: {{x: {{shape: {shape}}}}}
layers:
  - {{type: flatten}}
  - {{type: dense, id: out, units: {units}, activation: {activation}}}
training: {{loss: {loss}, batch_size: 4, seed: 0}}
data: {data}
"""
CLASSES = {"units": 2, "activation": "softmax", "loss": "sparse_categorical_crossentropy"}
VALUE = {"units": 1, "activation": "linear", "loss": "mse"}


def png(folder, name, size=(4, 4), mode="L"):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    shape = (size[0], size[1], 3) if mode == "RGB" else size
    Image.fromarray(np.zeros(shape, dtype=np.uint8), mode=mode).save(folder / name)
    return folder / name


def truncated_png(folder):
    path = png(folder / "pics" / "a", "0.png", size=(16, 16))
    png(folder / "pics" / "b", "0.png", size=(16, 16))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return "pics/a/0.png"


def garbage_png(folder):
    png(folder / "pics" / "a", "0.png")
    (folder / "pics" / "b").mkdir(parents=True)
    (folder / "pics" / "b" / "0.png").write_bytes(b"not a png at all")
    return "pics/b/0.png"


def mixed_sizes(folder):
    png(folder / "pics" / "a", "0.png", size=(4, 4))
    png(folder / "pics" / "b", "0.png", size=(5, 4))
    return "pics/b/0.png"


def empty_class(folder):
    png(folder / "pics" / "a", "0.png")
    (folder / "pics" / "b").mkdir(parents=True)
    (folder / "pics" / "b" / "readme.txt").write_text("no images here")
    return "pics/b"


def object_npz(folder):
    np.savez(folder / "a.npz", x=np.array([{"a": 1}, None], dtype=object), y=np.zeros(2))
    return "a.npz"


def writes(name, text):
    def write(folder):
        (folder / name).write_text(text)
        return name

    return write


def nothing(name):
    return lambda folder: name


def series(n):
    def write(folder):
        write_series_csv(folder / "s.csv", np.arange(float(n)))
        return "s.csv"

    return write


def npz_names(folder):
    np.savez(folder / "a.npz", features=np.zeros((4, 3)), label=np.zeros(4))
    return "a.npz"


def npz_shape(folder):
    np.savez(folder / "a.npz", x=np.zeros((4, 2)), y=np.zeros(4, dtype=np.int64))
    return "a.npz"


CSV = "{format: csv, path: t.csv, features: [a, b], target: y}"
IMAGES = "{format: image_folder, path: pics, color: grayscale}"
# case: (write the files, returning the path the message names; data section; head; shape; message)
CASES = {
    "missing file": (
        nothing("missing.csv"),
        "{format: csv, path: missing.csv, target: y}",
        CLASSES,
        [2],
        "no such file",
    ),
    "missing image folder": (
        nothing("nowhere"),
        "{format: image_folder, path: nowhere}",
        CLASSES,
        [4, 4, 3],
        "no such folder",
    ),
    "truncated image": (truncated_png, IMAGES, CLASSES, [16, 16, 1], "cannot read the image"),
    "unreadable image": (garbage_png, IMAGES, CLASSES, [4, 4, 1], "cannot read the image"),
    "images of mixed sizes": (
        mixed_sizes,
        IMAGES,
        CLASSES,
        [4, 4, 1],
        r"expected images of one size without 'size', received \[5, 4\] after \[4, 4\]",
    ),
    "empty class folder": (empty_class, IMAGES, CLASSES, [4, 4, 1], "empty class folder"),
    "column that does not exist": (
        writes("t.csv", "a,bb,y\n1,2,x\n3,4,z\n"),
        CSV,
        CLASSES,
        [2],
        r"t.csv: no column 'b'; did you mean 'bb'\? \(columns: 'a', 'bb', 'y'\)",
    ),
    "text in a numeric column": (
        writes("t.csv", "a,b,y\n1,2,x\n3,four,z\n"),
        CSV,
        CLASSES,
        [2],
        r"t.csv:3: column 'b': expected a number, received 'four'",
    ),
    "ragged row": (
        writes("t.csv", "a,b,y\n1,2,x\n3,4\n"),
        CSV,
        CLASSES,
        [2],
        r"t.csv:3: expected 3 fields as in the header, received 2",
    ),
    "missing value": (
        writes("t.csv", "a,b,y\n1,2,x\n3,NA,z\n"),
        CSV,
        CLASSES,
        [2],
        r"t.csv:3: column 'b': missing value",
    ),
    "empty cell": (writes("t.csv", "a,b,y\n1,2,x\n,4,z\n"), CSV, CLASSES, [2], r"t.csv:3: column 'a': missing value"),
    "target with one class": (
        writes("t.csv", "a,b,y\n1,2,x\n3,4,x\n"),
        CSV,
        CLASSES,
        [2],
        "column 'y': expected at least 2 classes in the training split, received 1",
    ),
    "more classes than the output": (
        writes("t.csv", "a,b,y\n1,2,x\n3,4,z\n5,6,w\n"),
        CSV,
        CLASSES,
        [2],
        "the model's output 'out' expects 2 output units, the data has 3 classes",
    ),
    "window longer than the series": (
        series(10),
        "{format: csv, path: s.csv, columns: [value], window: 12}",
        VALUE,
        [12, 1],
        r"s.csv \(train split\): expected a series longer than window \+ horizon - 1 = 12 steps, received 10",
    ),
    "npz with object arrays": (
        object_npz,
        "{format: npz, path: a.npz, inputs: {x: x}, targets: {out: y}}",
        VALUE,
        [1],
        "array 'x' holds Python objects; expected numeric arrays",
    ),
    "npz without the named array": (
        npz_names,
        "{format: npz, path: a.npz, inputs: {x: features}, targets: {out: labels}}",
        VALUE,
        [3],
        r"a.npz: no array 'labels'; did you mean 'label'\?",
    ),
    "arrays that do not fit the input": (
        npz_shape,
        "{format: npz, path: a.npz, inputs: {x: x}, targets: {out: y}}",
        CLASSES,
        [3],
        r"train.x: input 'x' expected samples of shape \[3\], received \[2\]",
    ),
}


def run_cli(folder, data, head, shape, *args):
    spec = folder / "spec.yaml"
    spec.write_text(SPEC.format(shape=shape, data=data, **head))
    return main(["train", str(spec), "--quiet", "--out", str(folder / "run"), *args])


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_file_is_one_located_line(tmp_path, capsys, case):
    write, data, head, shape, message = CASES[case]
    named = write(tmp_path)
    assert run_cli(tmp_path, data, head, shape) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("archspec: error: "), err
    if case != "arrays that do not fit the input":  # a shape is the spec's business: the split names it
        assert str(tmp_path / named) in err, err
    assert re.search(message, err), err
    assert not (tmp_path / "run").exists()  # nothing written


def test_a_file_that_is_not_utf8(tmp_path, capsys):
    (tmp_path / "t.csv").write_bytes(b"a,b,y\n1,2,\xe9t\xe9\n")
    assert run_cli(tmp_path, CSV, CLASSES, [2]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 't.csv'}: expected UTF-8 text, received byte 0xe9" in err


def test_unseen_category_in_the_test_file_is_reported_by_row(tmp_path, capsys):
    (tmp_path / "train.csv").write_text("c,y\nred,a\nblue,b\n")
    (tmp_path / "test.csv").write_text("c,y\nred,a\npink,b\n")
    data = "{format: csv, train: train.csv, test: test.csv, features: [c], target: y}"
    assert run_cli(tmp_path, data, CLASSES, [2]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'test.csv'}:3: column 'c': unseen category 'pink'" in err


def test_names_that_are_not_the_specs_inputs_are_located_spec_errors(tmp_path, capsys):
    data = "{format: npz, path: a.npz, inputs: {image: x}, targets: {out: y}}"
    assert run_cli(tmp_path, data, VALUE, [2]) == 1
    err = capsys.readouterr().err.strip()
    assert re.fullmatch(rf"{re.escape(str(tmp_path / 'spec.yaml'))}:8:\d+: no model input named 'image'; .*", err), err


def test_a_data_error_loads_no_framework(tmp_path):
    (tmp_path / "t.csv").write_text("a,b,y\n1,2,x\n3,four,z\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.format(shape=[2], data=CSV, **CLASSES))
    code = (
        "import sys; from archspec.cli import main; "
        f"code = main(['train', {str(spec)!r}, '--quiet']); "
        "loaded = [m for m in ('torch', 'tensorflow', 'keras') if m in sys.modules]; "
        "print(code, loaded)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "1 []", done.stdout + done.stderr
    assert "expected a number, received 'four'" in done.stderr


def test_a_file_changed_before_resume_is_refused(tmp_path, capsys):
    rows = "".join(f"{k},{k % 5},{'x' if k % 2 else 'z'}\n" for k in range(16))
    (tmp_path / "t.csv").write_text("a,b,y\n" + rows)
    assert (
        run_cli(tmp_path, CSV, CLASSES, [2], "--backend", "torch", "--max-steps", "2", "--checkpoint-every", "1") == 0
    )
    capsys.readouterr()
    (tmp_path / "t.csv").write_text("a,b,y\n" + rows.replace("7,2,x", "7,3,x"))
    spec = tmp_path / "spec.yaml"
    assert main(["train", str(spec), "--quiet", "--resume", str(tmp_path / "run"), "--max-steps", "4"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(
        f"archspec: error: {tmp_path / 't.csv'}: changed since the checkpoint in {tmp_path / 'run'}"
    ), err
    # Without the run's preprocessing.json the fingerprint of the training arrays still refuses it.
    (tmp_path / "run" / "preprocessing.json").unlink()
    assert main(["train", str(spec), "--quiet", "--resume", str(tmp_path / "run"), "--max-steps", "4"]) == 1
    assert "the checkpoint was trained on other data" in capsys.readouterr().err


def test_an_interrupted_run_keeps_its_preprocessing_from_the_start(tmp_path, capsys):
    rows = "".join(f"{k},{k % 5},{'x' if k % 2 else 'z'}\n" for k in range(16))
    (tmp_path / "t.csv").write_text("a,b,y\n" + rows)
    assert (
        run_cli(tmp_path, CSV, CLASSES, [2], "--backend", "torch", "--max-steps", "2", "--checkpoint-every", "1") == 0
    )
    saved = (tmp_path / "run" / "preprocessing.json").read_text()
    assert (
        main(["train", str(tmp_path / "spec.yaml"), "--quiet", "--resume", str(tmp_path / "run"), "--max-steps", "3"])
        == 0
    )
    assert (tmp_path / "run" / "preprocessing.json").read_text() == saved  # the same data, the same file


def test_predict_reports_rows_it_cannot_handle_and_writes_nothing(tmp_path, capsys):
    rows = "".join(f"{k},{k % 3},{'x' if k % 2 else 'z'}\n" for k in range(12))
    (tmp_path / "t.csv").write_text("a,b,y\n" + rows)
    assert run_cli(tmp_path, CSV, CLASSES, [2], "--backend", "torch", "--max-steps", "1") == 0
    spec, weights = str(tmp_path / "spec.yaml"), str(tmp_path / "run" / "weights.safetensors")
    (tmp_path / "new.csv").write_text("a,b,y\n1,2,x\n3,,x\n")
    capsys.readouterr()
    out = tmp_path / "preds.csv"
    assert main(["predict", spec, "--weights", weights, "--data", str(tmp_path / "new.csv"), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert (
        err
        == f"archspec: error: {tmp_path / 'new.csv'}:3: column 'b': missing value (set missing: drop_rows or fill_mean to handle it)\n"
    )
    assert not out.exists()
    (tmp_path / "new.csv").write_text("a,b\n1,2\n3,4\n")  # no target column needed
    assert main(["predict", spec, "--weights", weights, "--data", str(tmp_path / "new.csv")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "sample,predicted,p_x,p_z" and [line.split(",")[0] for line in lines[1:]] == ["2", "3"]
    (tmp_path / "run" / "preprocessing.json").unlink()
    assert main(["predict", spec, "--weights", weights, "--data", str(tmp_path / "new.csv")]) == 1
    assert "preprocessing.json: no such file" in capsys.readouterr().err
