"""The names configs give cells: the registry, ``register_cell`` and ``module:Class`` lookup.

A cell is a first-class citizen wherever a config or a command line names it: by a registered
name (``"lstm"``), or by ``"package.module:ClassName"`` for a cell that lives in the
researcher's own module (importable, e.g. on ``PYTHONPATH``). ``register_cell`` adds a name.
"""

import importlib
import json

import flax.linen as nn

from rnn_jax.cells.base import RecurrentCell
from rnn_jax.cells.classic import GRUCell, LSTMCell, MinimalGatedCell, SimpleRNNCell
from rnn_jax.cells.linear import LinearRecurrentCell, MinGRUCell, MinLSTMCell, RGLRUCell

# name -> cell class. The built-in cells; register_cell adds more.
CELLS: dict[str, type[RecurrentCell]] = {
    "rnn": SimpleRNNCell,
    "lstm": LSTMCell,
    "gru": GRUCell,
    "mgu": MinimalGatedCell,
    # Linear in h (rnn_jax.cells.linear): the recurrence can also run in parallel over time.
    "mingru": MinGRUCell,
    "minlstm": MinLSTMCell,
    "rglru": RGLRUCell,
}


def is_cell_class(obj) -> bool:
    """Whether ``obj`` is a Flax module class with the cell contract (``initialize_carry``)."""
    return (
        isinstance(obj, type)
        and issubclass(obj, nn.Module)
        and callable(getattr(obj, "initialize_carry", None))
    )


def register_cell(name: str, cls: type | None = None):
    """Registers a cell class under ``name``; usable as ``register_cell("x", Cls)`` or decorator.

    Raises:
      ValueError: ``name`` is taken by another class, contains ``:``, or ``cls`` is not a cell.
    """
    if cls is None:
        return lambda cls: register_cell(name, cls)
    if not name or ":" in name:
        raise ValueError(f"cell name {name!r}: a non-empty name without ':' (module:Class paths)")
    if not is_cell_class(cls):
        raise ValueError(f"register_cell({name!r}, {cls!r}): not a Flax cell class")
    if CELLS.get(name, cls) is not cls:
        raise ValueError(f"cell name {name!r} is taken by {CELLS[name].__qualname__}")
    CELLS[name] = cls
    return cls


def _import_cell(spec: str) -> type:
    module_name, _, class_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(
            f"cell {spec!r}: cannot import module {module_name!r} ({error}); is its folder on "
            "PYTHONPATH?"
        ) from None
    except Exception as error:  # The module is being edited: a syntax or name error, say.
        where = f"{error.filename}:{error.lineno}: " if isinstance(error, SyntaxError) else ""
        first = (str(error).strip().splitlines() or [""])[0]
        raise ValueError(
            f"cell {spec!r}: importing module {module_name!r} raised {type(error).__name__}: "
            f"{where}{first}"
        ) from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ValueError(f"cell {spec!r}: module {module_name!r} has no {class_name!r}")
    if not is_cell_class(cls):
        raise ValueError(f"cell {spec!r}: {class_name} is not a Flax cell class")
    return cls


def get_cell_class(spec: str) -> type[RecurrentCell]:
    """The cell class a config names: a registered name or ``"package.module:ClassName"``.

    Raises:
      ValueError: one line naming what is wrong and what is allowed.
    """
    if ":" in spec:
        return _import_cell(spec)
    if spec not in CELLS:
        raise ValueError(
            f"unknown cell {spec!r}: one of {', '.join(sorted(CELLS))}, or package.module:ClassName"
        )
    return CELLS[spec]


# Constructor arguments a model sets from its own fields, never from a cell's JSON arguments.
SET_ELSEWHERE = {
    "features": "the model's width (hidden_size)",
    "activation": "config.activation",
    "kernel_init": "config.kernel_init",
    "recurrent_kernel_init": "config.recurrent_init",
    "param_dtype": "the model",
    "dtype": "config.compute_dtype",
}


def parse_cell_kwargs(text: str) -> dict:
    """A cell's constructor arguments, as configs and command lines give them: a JSON object.

    ``""`` is none. JSON arrays become tuples (a Flax module's attributes must be hashable), so
    ``'{"decay_range": [0.5, 0.9]}'`` gives ``decay_range=(0.5, 0.9)``.

    Raises:
      ValueError: not JSON, not an object, or naming an argument the model sets from its own
        fields (``SET_ELSEWHERE``: the width, the activation, the initializers, the dtypes).
    """
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as error:
        raise ValueError(f"{text!r} is not JSON ({error})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{text!r} is not a JSON object, e.g. '{{\"reset_after\": false}}'")
    for name, field in SET_ELSEWHERE.items():
        if name in value:
            raise ValueError(f"{text!r} names {name}, which {field} sets")

    def hashable(v):
        return tuple(hashable(x) for x in v) if isinstance(v, list) else v

    return {k: hashable(v) for k, v in value.items()}


def is_linear(cell: type | object) -> bool:
    """Whether a cell (class or instance) is linear in h, so it can run in parallel over time."""
    cls = cell if isinstance(cell, type) else type(cell)
    return issubclass(cls, LinearRecurrentCell)


def linear_cell_names() -> list[str]:
    """The registered cells linear in h, now (``register_cell`` may have added some)."""
    return sorted(name for name, cls in CELLS.items() if is_linear(cls))


# The built-in cells linear in h.
LINEAR_CELLS = tuple(linear_cell_names())
