"""A CPU array that refuses implicit host conversion the way CuPy does, so tests catch
GPU-only bugs without a GPU.

Why it exists
    A CuPy array lives in GPU memory, and CuPy will not copy it to the host behind your back:
    ``np.asarray(gpu_array)`` raises, and so does ``gpu_array + np.ones(3)``. Code that only
    works on NumPy (``np.asarray(tensor.data)``, a constant made with ``np.ones`` and added to
    device data, ``np.add.at`` given host values) therefore breaks only on a GPU, and CI has none.
    ``StrictArray`` is a NumPy array in a wrapper that follows CuPy's rules, so the whole op suite
    can run through it on a CPU (device ``'strict'``) and such code fails in CI instead.

The rules, as CuPy has them
    * StrictArrays mix with StrictArrays, Python scalars and NumPy scalars (``np.float32(2)``).
    * NumPy functions and ufuncs accept StrictArrays and return StrictArrays (``np.exp(x)``,
      ``np.sum(x)``, ``np.add.at(x, i, v)``), as CuPy's ``__array_ufunc__``/``__array_function__``
      return CuPy arrays. Reductions and ``x[0]`` give 0-d arrays, not numbers: use ``float(x)``
      or ``x.item()`` (on a GPU that is a device-to-host copy).
    * NumPy integer or boolean arrays may be *indices* (``x[host_ids]``): CuPy copies them over.
    * Copies are explicit: ``strict_numpy.asarray(host)`` uploads (like ``cupy.asarray``),
      ``x.get()`` downloads (like CuPy's ``.get()``).
    * Anything else that would convert implicitly raises ``TypeError``: ``np.asarray(x)``, and a
      plain ``np.ndarray`` (of any ndim) next to a StrictArray in an operator, a NumPy function,
      a ``strict_numpy`` function, or as the value of ``x[i] = value``.

Stricter than CuPy, on purpose: CuPy silently uploads a NumPy *value* in ``x[int_array] = value``
and in ``cupy.add.at``, and host *indices* in ``cupy.take``; it raises ``ValueError`` for a
non-0-d ``x[slice] = value``. Here a NumPy array is accepted only as the index of ``x[...]`` and
``add.at``, so every other host-to-device copy in the framework is a visible ``xp.asarray``.

Ufunc methods follow CuPy too: ``add.at``, ``maximum.at``, ``add.reduce`` ... exist, but
``subtract.at`` or ``maximum.reduce`` do not in CuPy, so they raise here as well. (CuPy passes
``np.add.at(gpu_array, ...)`` on to ``cupy.add.at`` since cupy/cupy#7572, May 2023.)
"""
from __future__ import annotations

import functools
import operator
import types
from typing import Any, Optional

import numpy as np

from minidl.backend.device import Device

__all__ = ["StrictArray", "strict_numpy", "to_strict", "from_strict", "StrictDevice"]

_SCALARS = (int, float, complex, bool, np.generic)  # what CuPy accepts next to a device array
_GENERATORS = (np.random.Generator, np.random.RandomState)  # their draws are wrapped too
# The ufunc methods CuPy implements (v12+, cupy/cupy#7082); `outer` works for every ufunc.
_CUPY_UFUNC_METHODS = {"at": {"add", "maximum", "minimum", "bitwise_and", "bitwise_or",
                              "bitwise_xor"},
                       "reduce": {"add", "multiply"}, "accumulate": {"add"}, "reduceat": {"add"}}


def _host_array_error(where: str) -> TypeError:
    return TypeError(
        f"{where}: a NumPy array (host memory) was mixed with a StrictArray (device memory). "
        "CuPy refuses this (TypeError: Unsupported type <class 'numpy.ndarray'>), so this code "
        "would fail on a GPU. Create the array with the data's own module "
        "(xp = minidl.backend.get_array_module(data); xp.ones(...)), or copy it over "
        "explicitly with xp.asarray(host_array).")


# ----------------------------------------------------------------------------- unwrap / wrap
def _unwrap(obj: Any, where: str, seen: dict, host_ok: bool = False) -> Any:
    """``obj`` with StrictArrays (also inside lists and tuples) replaced by their NumPy arrays.

    A plain ``np.ndarray`` raises, unless ``host_ok`` (an explicit upload), where it is copied
    so that, as on a GPU, the device array does not share memory with the host one.
    ``seen`` records id(numpy array) -> StrictArray, so results that *are* an input come back
    as that same StrictArray (``np.add(x, y, out=z)`` returns ``z``).
    """
    kind = type(obj)
    if kind is StrictArray:
        seen[id(obj._a)] = obj
        return obj._a
    if kind is list or kind is tuple:
        return kind([_unwrap(item, where, seen, host_ok) for item in obj])
    if isinstance(obj, np.ndarray):
        if host_ok:
            return obj.copy()
        raise _host_array_error(where)
    return obj


def _check_cupy_has(ufunc_name: str, method: str) -> None:
    names = _CUPY_UFUNC_METHODS.get(method)
    if names is not None and ufunc_name not in names:
        raise TypeError(f"{ufunc_name}.{method}: CuPy has ufunc.{method} only for "
                        f"{', '.join(sorted(names))}, so this would fail on a GPU. Write it "
                        "with indexing, reductions such as x.max(axis=...), or one of those.")


def _unwrap_index(key: Any) -> Any:
    """An index with StrictArrays unwrapped. NumPy integer/boolean index arrays are allowed:
    CuPy's indexing copies them to the device itself (``_prepare_slice_list``)."""
    if type(key) is tuple:
        return tuple(_unwrap_index(k) for k in key)
    return key._a if type(key) is StrictArray else key


def _wrap(result: Any, seen: Optional[dict] = None) -> Any:
    """NumPy arrays and scalars in ``result`` as StrictArrays (scalars as 0-d, like CuPy)."""
    if isinstance(result, np.ndarray):
        if seen and id(result) in seen:
            return seen[id(result)]
        return _strict(result)
    if isinstance(result, np.generic):
        return _strict(np.asarray(result))
    if isinstance(result, (tuple, list)):
        items = [_wrap(item, seen) for item in result]
        return type(result)(*items) if hasattr(result, "_fields") else type(result)(items)
    if isinstance(result, _GENERATORS):
        return _StrictNamespace(result, type(result).__name__)  # its draws come back strict
    return result


def _call(func, args, kwargs, where: str, host_ok: bool = False, index_at: Optional[int] = None):
    """Call a NumPy function on unwrapped arguments and wrap its result."""
    seen: dict = {}
    if index_at is None:
        raw_args = [_unwrap(arg, where, seen, host_ok) for arg in args]
    else:  # ufunc.at(x, indices, values): the indices may be a host array, as in x[indices]
        raw_args = [_unwrap_index(arg) if i == index_at else _unwrap(arg, where, seen, host_ok)
                    for i, arg in enumerate(args)]
    raw_kwargs = {name: _unwrap(value, where, seen, host_ok) for name, value in kwargs.items()}
    return _wrap(func(*raw_args, **raw_kwargs), seen)


def _strict(array: np.ndarray) -> "StrictArray":
    """Wrap a NumPy array without StrictArray()'s type check: this is on every op's path."""
    new = object.__new__(StrictArray)
    new._a = array
    return new


# ----------------------------------------------------------------------------- the array
class StrictArray:
    """A NumPy array that behaves like a CuPy array towards the host (see the module docstring).

    ``StrictArray(numpy_array)`` wraps without copying; use ``to_strict`` for an upload.
    """

    __slots__ = ("_a",)
    __array_priority__ = 100  # as cupy.ndarray
    __hash__ = None  # arrays are mutable, as in NumPy

    def __init__(self, array: np.ndarray):
        if not isinstance(array, np.ndarray):
            raise TypeError(f"StrictArray wraps a numpy.ndarray, got {type(array).__name__}; "
                            "use minidl.backend.strict.to_strict(...) to make one from other data")
        self._a = array

    # -- conversions CuPy refuses or makes explicit
    def __array__(self, dtype=None, copy=None):
        raise TypeError(
            "Implicit conversion to a NumPy array is not allowed (CuPy raises this for GPU "
            "arrays). Please use `minidl.backend.to_numpy(x)` (or `x.get()`) to construct a "
            "NumPy array explicitly.")

    def get(self, stream=None) -> np.ndarray:
        """A host NumPy copy, like ``cupy.ndarray.get()``."""
        return self._a.copy()

    def item(self):
        return self._a.item()

    def tolist(self):
        return self._a.tolist()

    # float/int/bool go through NumPy exactly as CuPy's do (``float(self.get())``):
    # fine for one element, an error for more.
    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __complex__(self):
        return complex(self._a)

    def __bool__(self):
        return bool(self._a)

    def __repr__(self):
        text = repr(self._a)  # "array([...], dtype=...)"; continuation lines indented by 6
        return "StrictArray" + text[len("array"):].replace("\n", "\n" + " " * 6)

    def __str__(self):
        return str(self._a)

    def __format__(self, spec):
        return format(self._a, spec)

    def __copy__(self):
        return StrictArray(self._a.copy())

    def __deepcopy__(self, memo):
        return StrictArray(self._a.copy())

    # -- containers and indexing
    def __len__(self):
        return len(self._a)

    def __iter__(self):
        if self._a.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(len(self._a)))

    def __getitem__(self, key):
        return _wrap(self._a[_unwrap_index(key)])

    def __setitem__(self, key, value):
        self._a[_unwrap_index(key)] = _unwrap(value, "x[index] = value", {})

    # -- NumPy's protocols: np.exp(x), np.add.at(x, i, v), np.sum(x), np.concatenate([x, y])
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        _check_cupy_has(ufunc.__name__, method)
        func = ufunc if method == "__call__" else getattr(ufunc, method)
        where = f"numpy.{ufunc.__name__}" + ("" if method == "__call__" else f".{method}")
        return _call(func, inputs, kwargs, where, index_at=1 if method == "at" else None)

    def __array_function__(self, func, types, args, kwargs):
        return _call(func, args, kwargs, f"numpy.{func.__name__}")


def _operand(other: Any, symbol: str) -> Any:
    """The NumPy-level operand for an operator, or NotImplemented for foreign types."""
    if type(other) is StrictArray:
        return other._a
    if isinstance(other, _SCALARS):
        return other
    if isinstance(other, np.ndarray):
        raise _host_array_error(f"operator {symbol}")
    return NotImplemented  # lets e.g. a Tensor's reflected operator have a go


def _binary(op, symbol: str, reflected: bool = False):
    def method(self, other):
        other = _operand(other, symbol)
        if other is NotImplemented:
            return other
        return _wrap(op(other, self._a) if reflected else op(self._a, other))
    return method


def _in_place(op, symbol: str):
    def method(self, other):
        other = _operand(other, symbol)
        if other is NotImplemented:
            return other
        op(self._a, other)  # writes into our buffer, so views of it see the change too
        return self
    return method


def _unary(op):
    return lambda self: _wrap(op(self._a))


# Operators are generated from the `operator` module: `x + y` runs `operator.add` on the
# NumPy arrays underneath, after `_operand` has refused host arrays.
_SYMBOLS = {"add": "+", "sub": "-", "mul": "*", "truediv": "/", "floordiv": "//", "mod": "%",
            "pow": "**", "matmul": "@", "and": "&", "or": "|", "xor": "^", "lshift": "<<",
            "rshift": ">>"}
for _name, _symbol in _SYMBOLS.items():
    _op = getattr(operator, f"__{_name}__")
    setattr(StrictArray, f"__{_name}__", _binary(_op, _symbol))
    setattr(StrictArray, f"__r{_name}__", _binary(_op, _symbol, reflected=True))
    _in_place_op = getattr(operator, f"__i{_name}__")
    setattr(StrictArray, f"__i{_name}__", _in_place(_in_place_op, _symbol + "="))
StrictArray.__divmod__ = _binary(divmod, "divmod")
StrictArray.__rdivmod__ = _binary(divmod, "divmod", reflected=True)
_COMPARISONS = {"lt": "<", "le": "<=", "eq": "==", "ne": "!=", "gt": ">", "ge": ">="}
for _name, _symbol in _COMPARISONS.items():
    setattr(StrictArray, f"__{_name}__", _binary(getattr(operator, f"__{_name}__"), _symbol))
for _name in ("neg", "pos", "abs", "invert"):
    setattr(StrictArray, f"__{_name}__", _unary(getattr(operator, f"__{_name}__")))


# Read-only facts about the array pass straight through; array-valued ones come back strict.
# (`base`, `data`, `ctypes` and `flat` are left out: they would hand out host memory.)
def _fact(name: str):
    return property(lambda self: getattr(self._a, name), doc=f"numpy.ndarray.{name}")


def _array_fact(name: str):
    return property(lambda self: _wrap(getattr(self._a, name)), doc=f"numpy.ndarray.{name}")


for _name in ("shape", "dtype", "ndim", "size", "itemsize", "nbytes", "strides", "flags"):
    setattr(StrictArray, _name, _fact(_name))
for _name in ("T", "mT", "real", "imag"):
    setattr(StrictArray, _name, _array_fact(_name))


def _method(name: str):
    numpy_method = getattr(np.ndarray, name)

    def method(self, *args, **kwargs):
        return _call(numpy_method, (self, *args), kwargs, f"StrictArray.{name}")
    method.__name__ = name
    method.__doc__ = f"Like numpy.ndarray.{name}; array results are StrictArrays."
    return method


for _name in ("reshape transpose swapaxes squeeze ravel flatten astype copy fill view "
              "sum mean max min argmax argmin prod cumsum var std any all clip round "
              "dot take repeat nonzero sort argsort conj").split():
    setattr(StrictArray, _name, _method(_name))


# ----------------------------------------------------------------------------- the module
def _strict_function(func, where: str, host_ok: bool = False):
    @functools.wraps(func)
    def strict(*args, **kwargs):
        return _call(func, args, kwargs, where, host_ok=host_ok)
    return strict


class _StrictUfunc:
    """``strict_numpy.add`` and friends: calls and ``.at/.reduce/...`` follow the strict rules."""

    def __init__(self, ufunc: np.ufunc, where: str):
        self._ufunc, self._where, self.__name__ = ufunc, where, ufunc.__name__

    def __call__(self, *args, **kwargs):
        return _call(self._ufunc, args, kwargs, self._where)

    def __getattr__(self, name):
        value = getattr(self._ufunc, name)
        if name not in ("at", "reduce", "accumulate", "reduceat", "outer"):
            return value  # nin, nout, identity, types ...
        _check_cupy_has(self.__name__, name)

        def method(*args, **kwargs):
            index_at = 1 if name == "at" else None  # add.at(x, indices, values)
            return _call(value, args, kwargs, f"{self._where}.{name}", index_at=index_at)
        return method

    def __repr__(self):
        return f"<strict ufunc {self.__name__!r}>"


class _StrictNamespace:
    """Forwards attribute access to NumPy (or a NumPy object such as a random Generator),
    wrapping what it hands out so that it follows the strict rules."""

    def __init__(self, target: Any, name: str):
        self._target, self.__name__ = target, name

    def __getattr__(self, name):
        if name.startswith("__"):  # copy/pickle probes must not reach NumPy
            raise AttributeError(name)
        value = _strict_attribute(getattr(self._target, name), f"{self.__name__}.{name}")
        setattr(self, name, value)  # cached: the next lookup does not come here
        return value

    def __repr__(self):
        return f"<strict array module {self.__name__!r}: NumPy under CuPy's host-copy rules>"


def _strict_attribute(value: Any, where: str) -> Any:
    if value is np.ndarray:
        return StrictArray
    if isinstance(value, types.ModuleType):  # strict_numpy.random, .linalg, .fft
        return _StrictNamespace(value, where)
    if isinstance(value, np.ufunc):
        return _StrictUfunc(value, where)
    if isinstance(value, type) and not issubclass(value, _GENERATORS):
        return value  # dtypes (float32), errstate, finfo: CuPy exposes NumPy's own classes too
    if callable(value):
        return _strict_function(value, where)
    return value  # constants: pi, inf, nan, newaxis


strict_numpy = _StrictNamespace(np, "strict_numpy")
strict_numpy.__doc__ = "NumPy under CuPy's rules: get_array_module's answer for StrictArrays."
# The explicit uploads: cupy.asarray(numpy_array) is *the* way to copy host data to the device.
for _name in ("asarray", "array", "asanyarray"):
    _upload = _strict_function(getattr(np, _name), f"strict_numpy.{_name}", host_ok=True)
    setattr(strict_numpy, _name, _upload)


def to_strict(data: Any) -> StrictArray:
    """Upload: a StrictArray with a copy of ``data`` (a NumPy array, list or scalar), like
    ``cupy.asarray``. A StrictArray is returned as it is."""
    return strict_numpy.asarray(data)


def from_strict(array: Any) -> np.ndarray:
    """Download: a NumPy copy of a StrictArray, like ``cupy.asnumpy`` (NumPy input as is)."""
    return array.get() if isinstance(array, StrictArray) else np.asarray(array)


strict_numpy.asnumpy = from_strict  # cupy.asnumpy's name, for code written against CuPy
del _name, _symbol, _op, _in_place_op, _upload


# ----------------------------------------------------------------------------- the device


class StrictDevice(Device):
    """Device ``'strict'``: StrictArrays, so that CI without a GPU catches code that would only
    work on NumPy. Its random draws are NumPy's (same seed, same values as on the CPU)."""

    name = "strict"

    @property
    def xp(self) -> Any:
        return strict_numpy

    def owns(self, array_type: type) -> bool:
        return array_type is StrictArray

    def from_host(self, host: np.ndarray) -> StrictArray:
        return to_strict(host)

    def erf(self, x: Any) -> Any:
        """The CPU's erf on the wrapped array (a GPU has its own, as CuPy does)."""
        from minidl.backend.cpu import DEVICE as cpu
        return _strict(cpu.erf(x._a))


DEVICE = StrictDevice()
