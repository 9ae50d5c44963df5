"""Similarity flags: copies survive renaming and reformatting, independent work is not flagged."""

from __future__ import annotations

import nbformat
import pytest

from grader.classroom.similarity import (
    StudentCode,
    exercise_code,
    normalized_tokens,
    similar_pairs,
    winnow,
)

TEMPLATE_CELLS = [
    "# Build the network here\n# YOUR CODE HERE\nraise NotImplementedError()",
    "# YOUR CODE HERE\nraise NotImplementedError()",
]

ORIGINAL = [
    '''def make_mlp(hidden_units, dropout_rate):
    inputs = keras.Input(shape=(1024,))
    x = inputs
    for width in hidden_units:
        x = layers.Dense(width, activation="relu")(x)
        x = layers.Dropout(dropout_rate)(x)
    outputs = layers.Dense(10, activation="softmax")(x)
    net = keras.Model(inputs, outputs)
    net.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3),
                loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return net

model = make_mlp([256, 128], 0.2)''',
    '''history = model.fit(x_train, y_train, epochs=EPOCHS, batch_size=128,
                    validation_split=0.1, verbose=0)
best_epoch = int(np.argmax(history.history["val_accuracy"])) + 1
loss, test_accuracy = model.evaluate(x_test, y_test, verbose=0)
print(f"best epoch {best_epoch}, test accuracy {test_accuracy:.3f}")''',
]

# The same code with every name the student chose renamed and different constants.
RENAMED = [
    '''def build_network(sizes, p_drop):
    inp = keras.Input(shape=(1024,))
    h = inp
    for n in sizes:
        h = layers.Dense(n, activation="relu")(h)
        h = layers.Dropout(p_drop)(h)
    out = layers.Dense(10, activation="softmax")(h)
    m = keras.Model(inp, out)
    m.compile(optimizer=keras.optimizers.Adam(learning_rate=0.002),
              loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m

model = build_network([512, 64], 0.3)''',
    '''hist = model.fit(x_train, y_train, epochs=EPOCHS, batch_size=64,
                 validation_split=0.2, verbose=0)
top = int(np.argmax(hist.history["val_accuracy"])) + 1
l, test_accuracy = model.evaluate(x_test, y_test, verbose=0)
print(f"epoch {top}: {test_accuracy:.3f}")''',
]

# The original run through a formatter: other line breaks, quotes, trailing commas, comments.
REFORMATTED = [
    '''def make_mlp(
    hidden_units,
    dropout_rate,
):
    # functional API
    inputs = keras.Input(shape=(1024,),)
    x = inputs
    for width in hidden_units:
        x = layers.Dense(width, activation='relu')(x)
        x = layers.Dropout(dropout_rate)(x)
    outputs = layers.Dense(10, activation='softmax')(x)
    net = keras.Model(inputs, outputs)
    net.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-3),
        loss='sparse_categorical_crossentropy',
        metrics=['accuracy'],
    )
    return net


model = make_mlp([256, 128], 0.2)''',
    '''history = model.fit(
    x_train, y_train, epochs=EPOCHS, batch_size=128, validation_split=0.1, verbose=0,
)
best_epoch = int(np.argmax(history.history['val_accuracy'])) + 1
loss, test_accuracy = model.evaluate(x_test, y_test, verbose=0)
print(f'best epoch {best_epoch}, test accuracy {test_accuracy:.3f}')''',
]

# Two students who solved the same exercises on their own.
INDEPENDENT_A = [
    '''model = keras.Sequential([
    keras.Input(shape=(1024,)),
    layers.Dense(256, activation="relu"),
    layers.Dense(128, activation="relu"),
    layers.Dense(10, activation="softmax"),
])
model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])''',
    '''callbacks = [keras.callbacks.EarlyStopping(patience=3, restore_best_weights=True)]
model.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=EPOCHS, callbacks=callbacks)
test_accuracy = float(np.mean(model.predict(x_test).argmax(axis=1) == y_test))''',
]
INDEPENDENT_B = [
    '''def block(units):
    return [layers.Dense(units), layers.BatchNormalization(), layers.Activation("relu")]

stack = [keras.Input(shape=(1024,))] + block(300) + block(100)
stack.append(layers.Dense(10, activation="softmax"))
model = keras.Sequential(stack)
opt = keras.optimizers.SGD(learning_rate=0.05, momentum=0.9)
model.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])''',
    '''for epoch in range(EPOCHS):
    model.fit(x_train, y_train, epochs=1, batch_size=32, verbose=0, shuffle=True)
    print(epoch, model.evaluate(x_val, y_val, verbose=0))
_, test_accuracy = model.evaluate(x_test, y_test, verbose=0)''',
]


def _notebook(cells: list[str], *, with_locked: str = "") -> dict:
    nb = nbformat.v4.new_notebook()
    if with_locked:
        locked = nbformat.v4.new_code_cell(with_locked)
        locked.metadata["nbgrader"] = {"solution": False, "locked": True, "grade_id": "setup"}
        nb.cells.append(locked)
    for i, source in enumerate(cells):
        cell = nbformat.v4.new_code_cell(source)
        cell["id"] = f"ex{i}"
        cell.metadata["nbgrader"] = {"solution": True, "grade": False, "grade_id": f"ex_{i}",
                                     "locked": False, "schema_version": 3}
        nb.cells.append(cell)
    return nb


def _code(student: str, cells: list[str]) -> StudentCode:
    template = _notebook(TEMPLATE_CELLS)
    return StudentCode(student, "01", exercise_code(_notebook(cells), template))


def test_when_code_is_copied_and_renamed_then_the_pair_is_flagged():
    pairs = similar_pairs([_code("ann", ORIGINAL), _code("bob", RENAMED)])
    assert [(p.student_a, p.student_b) for p in pairs] == [("ann", "bob")]
    assert pairs[0].similarity > 0.9


def test_when_code_is_reformatted_then_the_pair_is_flagged():
    pairs = similar_pairs([_code("ann", ORIGINAL), _code("cat", REFORMATTED)])
    assert [(p.student_a, p.student_b) for p in pairs] == [("ann", "cat")]


def test_when_solutions_are_independent_then_no_pair_is_flagged():
    codes = [_code("ann", ORIGINAL), _code("dan", INDEPENDENT_A), _code("eve", INDEPENDENT_B)]
    assert similar_pairs(codes) == []


def test_in_a_class_only_the_copies_are_flagged():
    codes = [_code("ann", ORIGINAL), _code("bob", RENAMED), _code("cat", REFORMATTED),
             _code("dan", INDEPENDENT_A), _code("eve", INDEPENDENT_B)]
    flagged = {(p.student_a, p.student_b) for p in similar_pairs(codes)}
    assert flagged == {("ann", "bob"), ("ann", "cat"), ("bob", "cat")}


def test_when_students_hand_in_the_blank_template_then_nothing_is_flagged():
    assert similar_pairs([_code("ann", TEMPLATE_CELLS), _code("bob", TEMPLATE_CELLS)]) == []


def test_only_exercise_cells_count_and_template_lines_are_removed():
    template = _notebook(["x = load()\n# YOUR CODE HERE\nraise NotImplementedError()"])
    student = _notebook(["x = load()\ny = x * 2"], with_locked="import secret_setup")
    code = exercise_code(student, template)
    assert code == "y = x * 2"


def test_pairs_are_only_compared_within_a_module():
    a = _code("ann", ORIGINAL)
    b = StudentCode("bob", "02", _code("bob", RENAMED).source)
    assert similar_pairs([a, b]) == []


def test_renaming_does_not_change_tokens_but_library_names_remain():
    left = normalized_tokens("total = layers.Dense(units)(inputs)\nunits = 3")
    right = normalized_tokens("acc = layers.Dense(width)(inputs)\nwidth = 99")
    assert left == right
    assert "Dense" in left and "layers" in left


def test_broken_code_is_tokenised_without_raising():
    tokens = normalized_tokens('def f(:\n  return "unterminated\n')
    assert tokens


@pytest.mark.parametrize("k, window", [(0, 4), (5, 0)])
def test_winnow_rejects_bad_parameters(k, window):
    with pytest.raises(ValueError, match="expected k >= 1"):
        winnow(["a"] * 20, k=k, window=window)


def test_winnowing_guarantee_a_shared_run_of_k_plus_w_minus_1_tokens_is_found():
    shared = [f"t{i}" for i in range(9)]  # k + w - 1 with k=6, w=4
    left = winnow(["a", "b", "c", *shared, "d"], k=6, window=4)
    right = winnow(["x", *shared, "y", "z", "w"], k=6, window=4)
    assert left & right


TYPE_CONFUSED = [
    {"cells": ["x"], "nbformat": 4},
    {"cells": "abc"}, {"cells": 7}, {"cells": {"a": 1}}, [], "text", None, 3,
    {"cells": [None, 1, [1], {"cell_type": 3}]},
    {"cells": [{"cell_type": "code", "metadata": "nbgrader", "source": "x = 1"}]},
    {"cells": [{"cell_type": "code", "metadata": {"nbgrader": "solution"}, "source": "x = 1"}]},
    {"cells": [{"cell_type": "code", "metadata": {"nbgrader": ["solution"]}, "source": "x"}]},
    {"cells": [{"cell_type": "code", "metadata": {"nbgrader": {"solution": True, "grade_id": 5}},
                "source": 12, "id": ["x"]}]},
    {"cells": [{"cell_type": "code", "metadata": {"nbgrader": {"solution": True}},
                "source": [1, None, {"a": 2}, "y = 2\n"]}]},
]


@pytest.mark.parametrize("notebook", TYPE_CONFUSED, ids=range(len(TYPE_CONFUSED)))
def test_type_confused_json_is_read_without_raising(notebook):
    code = exercise_code(notebook, template=notebook if isinstance(notebook, dict) else None)
    assert isinstance(code, str)


def test_a_source_list_keeps_only_its_strings():
    nb = TYPE_CONFUSED[-1]
    assert exercise_code(nb) == "y = 2"


def test_pasted_copies_count_once_and_what_is_read_is_bounded():
    from grader.classroom.similarity import MAX_CELL_CHARS, MAX_CODE_CHARS

    cell = _notebook(["x = compute(1)\n" * 50]).cells[0]
    nb = {"cells": [cell] * 50_000}
    assert exercise_code(nb) == exercise_code({"cells": [cell]})
    many = {"cells": [{**cell, "id": f"c{i}", "metadata": {"nbgrader": {
        "solution": True, "grade_id": f"g{i}"}}, "source": "y = f(2)\n" * 5000} for i in range(300)]}
    code = exercise_code(many)
    assert len(code) <= MAX_CODE_CHARS + MAX_CELL_CHARS


def test_containment_is_reported_in_both_directions():
    full = _code("full", ORIGINAL + INDEPENDENT_A)
    part = _code("part", ORIGINAL)
    (pair,) = similar_pairs([full, part])
    shares = {pair.student_a: pair.a_in_b, pair.student_b: pair.b_in_a}
    assert shares["part"] == 1.0 and shares["full"] < 0.8
    assert pair.kind == "contained"
    assert "of part's code is contained in full's" in pair.describe()
    (copy_pair,) = similar_pairs([_code("ann", ORIGINAL), _code("bob", RENAMED)])
    assert copy_pair.kind == "copy"
