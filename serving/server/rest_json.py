"""TF Serving's REST JSON (`util/json_tensor.cc`) <-> numpy arrays and tf.Examples: the REST converters.

This module is over 500 lines on purpose: it mirrors json_tensor.cc function by function (reading
and writing share the dtype rules, the float text and the error wording), and splitting the twin
rules apart would make them drift. Nothing here knows about sockets, models or threads. It covers
the row (`instances` -> `predictions`) and columnar (`inputs` -> `outputs`) predict formats,
`{"b64": ...}` values and `*_bytes` outputs, NaN/Infinity tokens, the float formatting (`%g`,
then full precision when that does not round-trip, `.0` on whole numbers), classify/regress
`examples` + `context` -> tf.Example, and the error body.
"""

from __future__ import annotations

import base64
import binascii
import enum
import gc
import json
import math
from array import array as packed_floats
from itertools import chain
from operator import eq
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import orjson
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow.core.framework import types_pb2

from serving.errors import ServingError, invalid
from serving.saved_model import InputSpec, dtype_name, numpy_dtype


class RequestFormat(enum.Enum):
    ROW = "row"
    COLUMNAR = "columnar"


# --------------------------------------------------------------------------------------------
# JSON parsing

# Bodies from this size on are parsed with the cyclic GC paused (see `_loads_without_gc`).
_NO_GC_BODY_BYTES = 64 * 1024


def _loads_without_gc(body: bytes) -> Any:
    """orjson.loads with the cyclic garbage collector paused.

    A big numeric body allocates hundreds of thousands of lists and floats, which triggers
    collection after collection while it is being built (none of them can find garbage: the
    new objects are all reachable). For a 64-row 32x32x3 request (1.2 MB) that is 105 ms with
    the collector against 19 ms without. Re-enabled afterwards only if it was on."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return orjson.loads(body)
    finally:
        if was_enabled:
            gc.enable()


def parse_json_body(body: bytes) -> dict[str, Any]:
    """Parses a request body as TF Serving does (rapidjson with kParseNanAndInfFlag).

    orjson is strict JSON and rejects `NaN`/`Infinity`; only when it fails and the body holds
    such a token does the slower stdlib parser (which accepts them) get a second try.
    """
    if not body:
        raise invalid("JSON Parse error: The document is empty")
    try:
        if len(body) < _NO_GC_BODY_BYTES:
            doc = orjson.loads(body)
        else:
            doc = _loads_without_gc(body)
    except orjson.JSONDecodeError:
        doc = _tolerant_parse(body)
    if not isinstance(doc, dict):
        raise invalid(f"JSON Value: {_short_json(doc)} Is not object")
    return doc


def _tolerant_parse(body: bytes) -> Any:
    # Also covers integers beyond 64 bits, which orjson refuses and the tensor check reports.
    try:
        # parse_constant gets NaN, Infinity and -Infinity: exactly rapidjson's extra tokens.
        return json.loads(body, parse_constant=float, parse_float=_parse_float)
    except RecursionError:
        raise invalid("JSON Parse error: nesting too deep") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise invalid(f"JSON Parse error: {error}") from None


def _parse_float(token: str) -> float:
    value = float(token)
    if math.isinf(value):  # rapidjson: only the Infinity token may be infinite
        raise ValueError(f"Number too big to be stored in double: {token[:40]}")
    return value


def _short_json(value: Any, limit: int = 120) -> str:
    """A JSON rendering of `value` for error messages, truncated so payloads are not echoed."""
    try:
        text = orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    except TypeError:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# rapidjson's type names for the values a JSON parser returns (booleans apart: see _json_type).
_JSON_TYPES = {type(None): "Null", dict: "Object", list: "Array", str: "String"}


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)  # rapidjson's True and False are types of their own
    return _JSON_TYPES.get(type(value), "Number")


# --------------------------------------------------------------------------------------------
# JSON -> arrays (predict)

_FLOAT_KINDS = frozenset("fiu")
_INT_KINDS = frozenset("iu")
_FLOAT32_MAX_EXACT_INT = (1 << 24) - 1
_FLOAT64_MAX_EXACT_INT = (1 << 53) - 1
# Largest finite value of the float targets a double can overflow.
_FLOAT_MAX = {t: float(np.finfo(t).max) for t in (np.dtype(np.float16), np.dtype(np.float32))}
# Longest innermost list for which flattening a nest beats numpy's nested conversion.
_FLATTEN_MAX_INNER = 16


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _decode_b64(value: Mapping[str, str]) -> bytes:
    try:
        return base64.b64decode(value["b64"], validate=True)
    except (binascii.Error, ValueError):
        # absl::Base64Unescape also accepts the web-safe alphabet and missing padding.
        text = value["b64"].strip().replace("-", "+").replace("_", "/").rstrip("=")
        try:
            return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise invalid("Unable to base64 decode") from None


def _string_leaf(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    if isinstance(value, dict):
        if _is_b64(value):
            return _decode_b64(value)
        raise invalid(f"JSON Value: {_short_json(value)} not formatted correctly for base64 data")
    raise _type_error(value, types_pb2.DT_STRING)


def _type_error(value: Any, dtype: int) -> ServingError:
    return invalid(
        f"JSON Value: {_short_json(value)} Type: {_json_type(value)} is not of expected type: "
        f"{dtype_name(dtype)}"
    )


def _dense_shape(value: Any) -> list[int]:
    """GetDenseTensorShape: the shape read along the first element of each nested list."""
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _walk(value: Any, shape: Sequence[int], leaf: Callable[[Any], object], level: int = 0) -> None:
    """FillTensorProto's walk: every list at its level and of its size in `shape`, every leaf at
    the last level and handed to `leaf` (which checks or collects it)."""
    rank = len(shape)
    if not isinstance(value, list):
        if level != rank:
            raise invalid(
                f"JSON Value: {_short_json(value)} found at incorrect level: {level + 1} in the "
                f"JSON DOM. Expected at level: {rank}"
            )
        leaf(value)
        return
    if level >= rank:
        raise invalid(f"Encountered list at unexpected level: {level} expected < {rank}")
    if len(value) != shape[level]:
        raise invalid(
            f"Encountered list at unexpected size: {len(value)} at level: {level} expected size: "
            f"{shape[level]}"
        )
    for item in value:
        _walk(item, shape, leaf, level + 1)


def _check_scalar(value: Any, dtype: int) -> None:
    if dtype == types_pb2.DT_STRING:
        _string_leaf(value)
        return
    if isinstance(value, bool):
        if dtype != types_pb2.DT_BOOL:
            raise _type_error(value, dtype)
        return
    if dtype == types_pb2.DT_BOOL or not isinstance(value, (int, float)):
        raise _type_error(value, dtype)
    if dtype in (types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE, types_pb2.DT_HALF):
        _check_lossless(value, dtype)
        return
    if isinstance(value, float):
        raise _type_error(value, dtype)
    info = np.iinfo(numpy_dtype(dtype))
    if not info.min <= value <= info.max:
        raise _type_error(value, dtype)


def _check_lossless(value: float | int, dtype: int) -> None:
    double = dtype == types_pb2.DT_DOUBLE
    if (
        abs(value) > (_FLOAT64_MAX_EXACT_INT if double else _FLOAT32_MAX_EXACT_INT)
        if isinstance(value, int)
        else math.isfinite(value) and not double and abs(value) > float(np.finfo(np.float32).max)
    ):
        target = "double" if double else "float"
        raise invalid(f"Cannot convert JSON value: {value!r} to {target} without loss of precision.")


def json_to_array(value: Any, dtype: int) -> np.ndarray:
    """Converts one JSON tensor (scalar or nested lists) to an array of the signature's dtype.

    The fast path is a single numpy conversion checked by the inferred kind; anything numpy
    cannot convert cleanly is re-walked by `_walk` to produce TF Serving's message.
    """
    if dtype == types_pb2.DT_STRING:
        return _json_to_string_array(value)
    target = numpy_dtype(dtype)
    inferred = _asarray(value)
    if inferred is not None and inferred.dtype.kind != "O":
        kind = inferred.dtype.kind
        if target.kind == "f" and kind in _FLOAT_KINDS:
            if kind in _INT_KINDS:
                limit = _FLOAT64_MAX_EXACT_INT if target.itemsize == 8 else _FLOAT32_MAX_EXACT_INT
                if not inferred.size or max(-int(inferred.min()), int(inferred.max())) <= limit:
                    return inferred.astype(target)
            else:
                converted = _narrow_floats(inferred, target)
                if converted is not None:
                    return converted
        elif target.kind in "iu" and kind in _INT_KINDS:
            info = np.iinfo(target)
            if not inferred.size or (info.min <= int(inferred.min()) and int(inferred.max()) <= info.max):
                return inferred.astype(target, copy=False)
        elif target.kind == "b" and kind == "b":
            return inferred
    _walk(value, _dense_shape(value), lambda leaf: _check_scalar(leaf, dtype))
    # The walk found nothing wrong per element, so the nesting itself is ragged.
    raise invalid(f"JSON Value: {_short_json(value)} is not a dense tensor (ragged nested lists)")


def _asarray(value: Any) -> np.ndarray | None:
    """np.asarray(value), or None where numpy refuses it.

    numpy pays per nested list, so a dense nest whose innermost lists are short (an image's
    channels) converts faster from its flattened leaves (1.3-2.5x for 3072 values); those are
    the same leaves, so the dtype and values are too. A string or JSON object standing in for a
    list flattens into string leaves (its characters or keys), which no numeric dtype accepts,
    just as numpy's own call refuses it. Anything else (ragged, deeper in places, empty) takes
    the plain call."""
    shape = _dense_shape(value)
    if len(shape) > 1 and shape[-1] <= _FLATTEN_MAX_INNER and 0 not in shape:
        items = value
        try:
            for size in shape[1:]:
                if size == 1:  # unpacking is ~3x faster than chain; ValueError unless each
                    items = [item for [item] in items]  # holds one, TypeError for a number
                    continue
                if set(map(len, items)) != {size}:  # TypeError: a number in place of a list
                    break
                items = list(chain.from_iterable(items))
            else:  # a list among the leaves makes numpy refuse the mix: the first leaf is not one
                return np.asarray(items).reshape(shape)
        except (ValueError, TypeError, OverflowError):
            pass
    try:
        return np.asarray(value)
    except (ValueError, TypeError, OverflowError):
        return None


def _narrow_floats(inferred: np.ndarray, target: np.dtype) -> np.ndarray | None:
    """A float array as the float `target`, or None when a finite value overflows to infinity
    (a double too big for float32: lossy). The errstate and infinity checks run only when some
    magnitude is beyond `target`'s largest finite value, or is NaN."""
    if inferred.dtype == target:
        return inferred
    if not inferred.size or np.abs(inferred).max() <= _FLOAT_MAX.get(target, math.inf):
        return inferred.astype(target)
    with np.errstate(over="ignore"):
        converted = inferred.astype(target)
    if np.isfinite(converted).all() or not (np.isinf(converted) & np.isfinite(inferred)).any():
        return converted
    return None


def _json_to_string_array(value: Any) -> np.ndarray:
    shape = _dense_shape(value)
    flat: list[bytes] = []
    _walk(value, shape, lambda leaf: flat.append(_string_leaf(leaf)))
    return np.array(flat, dtype=object).reshape(shape)


def predict_inputs_from_json(
    doc: Mapping[str, Any], input_specs: Mapping[str, InputSpec], signature_name: str
) -> tuple[dict[str, np.ndarray], RequestFormat]:
    """FillPredictRequestFromJson: the `instances` or `inputs` of a parsed body -> arrays."""
    if not input_specs:
        raise invalid(f"Failed to get input map for signature: {signature_name or 'DEFAULT'}")
    has_instances = "instances" in doc
    has_inputs = "inputs" in doc
    if has_instances and has_inputs:
        raise invalid(
            f"JSON Value: {_short_json(doc)} Not formatted correctly expecting only one of "
            "'inputs' or 'instances' keys to exist "
        )
    if has_instances:
        instances = doc["instances"]
        if not isinstance(instances, list):
            raise invalid(f"JSON Value: {_short_json(doc)} Excepting 'instances' to be an list/array")
        if not instances:
            raise invalid(f"JSON Value: {_short_json(doc)} No values in 'instances' array")
        return _inputs_from_instances(instances, input_specs), RequestFormat.ROW
    if has_inputs:
        return _inputs_from_columns(doc["inputs"], input_specs), RequestFormat.COLUMNAR
    raise invalid("Missing 'inputs' or 'instances' key")


def _is_named_object(value: Any) -> bool:
    return isinstance(value, dict) and not _is_b64(value)


def _inputs_from_instances(
    instances: list[Any], input_specs: Mapping[str, InputSpec]
) -> dict[str, np.ndarray]:
    first = instances[0]
    if not isinstance(first, dict) and len(input_specs) > 1:
        raise invalid(
            "instances is a plain list, but expecting list of objects as multiple input tensors "
            "required as per tensorinfo_map"
        )
    if not _is_named_object(first):
        name = next(iter(input_specs))
        for index, item in enumerate(instances):
            if _is_named_object(item):
                raise invalid(f"Expecting value/list but got object at item {index} of input list")
        try:
            return {name: json_to_array(instances, input_specs[name].dtype)}
        except ServingError as error:
            raise _instances_error(instances, input_specs[name].dtype, "", error) from None

    names = set(input_specs)
    columns: dict[str, list[Any]] = {name: [] for name in input_specs}
    for index, item in enumerate(instances):
        if not _is_named_object(item):
            raise invalid(f"Expecting object but got list at item {index} of input list")
        for key in item:
            if key not in names:
                raise invalid(
                    f"Failed to process element: {index} key: {key} of 'instances' list. Error: "
                    f"INVALID_ARGUMENT: JSON object: does not have named input: {key}"
                )
        if len(item) != len(names):
            raise invalid(
                f"Failed to process element: {index} of 'instances' list. JSON object: "
                f"{_short_json(item)} keys must be equal to: {','.join(sorted(names))}"
            )
        for key, value in item.items():
            columns[key].append(value)
    arrays = {}
    for name, values in columns.items():
        try:
            arrays[name] = json_to_array(values, input_specs[name].dtype)
        except ServingError as error:
            raise _instances_error(values, input_specs[name].dtype, f" key: {name}", error) from None
    return arrays


def _instances_error(values: list[Any], dtype: int, key: str, error: ServingError) -> ServingError:
    """Names the first instance that is wrong on its own or differs in shape from the first
    (AddInstanceItem's messages); only runs once the batch conversion has failed."""
    first_shape = None
    for index, item in enumerate(values):
        try:
            shape = json_to_array(item, dtype).shape
        except ServingError as item_error:
            problem = item_error.message
        else:
            if first_shape is None or shape == first_shape:
                first_shape = shape
                continue
            problem = f"Expecting shape {list(first_shape)} but got: {list(shape)}"
        return invalid(
            f"Failed to process element: {index}{key} of 'instances' list. Error: "
            f"INVALID_ARGUMENT: {problem}"
        )
    return invalid(f"Failed to process 'instances' list. Error: {error.message}")


def _inputs_from_columns(value: Any, input_specs: Mapping[str, InputSpec]) -> dict[str, np.ndarray]:
    if not isinstance(value, dict) or _is_b64(value):
        if len(input_specs) > 1:
            raise invalid(
                "inputs is a plain value/list, but expecting an object as multiple input tensors "
                "required as per tensorinfo_map"
            )
        name = next(iter(input_specs))
        return {name: json_to_array(value, input_specs[name].dtype)}
    arrays = {}
    for name, spec in input_specs.items():
        if name not in value:
            raise invalid(f"Missing named input: {name} in 'inputs' object.")
        arrays[name] = json_to_array(value[name], spec.dtype)
    return arrays


# --------------------------------------------------------------------------------------------
# arrays -> JSON (predict, classify, regress)


# What `%g` writes for non-finite values, and what TF Serving writes instead.
_NON_FINITE_TEXT = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}
# From this many values on, numpy parses their texts back faster than float() one by one.
_MANY_FLOATS = 128


def format_float(value: float, double: bool = False) -> str:
    """WriteDecimal for one value: `%g`, full precision if that does not round-trip, `.0`."""
    return _format_floats([value], double)[0]


def _format_floats(values: Sequence[float], double: bool) -> list[str]:
    """WriteDecimal over many values: `%g`, or `%.9g` (`%.17g` for doubles) where that text
    does not parse back to the same float32 (float64; TF rounds both sides to the type);
    `NaN`/`Infinity`/`-Infinity`; `.0` on whole numbers.

    The round trip is checked for all values at once: few values packed, one bytes comparison
    when all match; many with numpy, which parses many texts faster."""
    texts = ["%g" % v for v in values]  # nan, inf and -inf parse back too
    if len(texts) < _MANY_FLOATS:
        code = "d" if double else "f"
        parsed, wanted = packed_floats(code, map(float, texts)), packed_floats(code, values)
        same = None if parsed.tobytes() == wanted.tobytes() else list(map(eq, parsed, wanted))
    else:
        dtype = np.float64 if double else np.float32
        with np.errstate(over="ignore"):
            parsed, wanted = np.array(texts, np.float64), np.array(values, np.float64)
            matches = parsed.astype(dtype) == wanted.astype(dtype)
        same = None if matches.all() else matches.tolist()
    if same is not None:
        full = "%.17g" if double else "%.9g"  # writes nan for NaN, which never round-trips
        texts = [t if ok else full % v for t, v, ok in zip(texts, values, same)]
    return [t if "." in t or "e" in t else _NON_FINITE_TEXT.get(t) or t + ".0" for t in texts]


def _leaf_texts(array: np.ndarray, as_bytes: bool) -> list[str]:
    flat = array.reshape(-1)
    kind = flat.dtype.kind
    if kind == "f":
        double = flat.dtype.char == "d"
        if not double and flat.dtype.char != "f":
            flat = flat.astype(np.float32)
        return _format_floats(flat.tolist(), double)
    if kind in "iu":
        return list(map(str, flat.tolist()))
    if kind == "b":
        return ["true" if v else "false" for v in flat.tolist()]
    if kind in "OSU":
        out = []
        for v in flat.tolist():
            if isinstance(v, str):
                v = v.encode("utf-8", "surrogatepass")
            if as_bytes:
                out.append('{"b64": "' + base64.b64encode(v).decode("ascii") + '"}')
            else:
                out.append(orjson.dumps(v.decode("utf-8", errors="replace")).decode())
        return out
    raise invalid(f"Failed to write JSON value for tensor type: {flat.dtype}")


def _nest(texts: list[str], shape: Sequence[int], keep: int) -> list[str]:
    """Groups leaf texts into nested JSON arrays, innermost dimension first, leaving the first
    `keep` dimensions: one string per index into those (`keep=0`: one, the whole tensor)."""
    items = texts
    for depth in range(len(shape) - 1, keep - 1, -1):
        size = shape[depth]
        if size == 0:
            items = ["[]"] * math.prod(shape[:depth])
        else:
            items = ["[" + ", ".join(items[i : i + size]) + "]" for i in range(0, len(items), size)]
    return items


def _tensor_texts(name: str, array: np.ndarray, keep: int) -> list[str]:
    """`_nest` over the tensor's leaf texts (`*_bytes` string outputs as `{"b64": ...}`)."""
    return _nest(_leaf_texts(array, name.endswith("_bytes") and array.dtype.kind in "OSU"), array.shape, keep)


def _outputs_texts(outputs: Mapping[str, np.ndarray], names: list[str], keep: int) -> list[str]:
    """`_tensor_texts` of the one output, or of all as `{"name": ..., ...}` objects, index by index."""
    if len(names) == 1:
        return _tensor_texts(names[0], outputs[names[0]], keep)
    keys = [orjson.dumps(n).decode() + ": " for n in names]
    columns = zip(*(_tensor_texts(n, outputs[n], keep) for n in names))
    return ["{" + ", ".join(map(str.__add__, keys, texts)) + "}" for texts in columns]


def predict_response_json(outputs: Mapping[str, np.ndarray], fmt: RequestFormat) -> bytes:
    """MakeJsonFromTensors: `{"predictions": ...}` for row requests, `{"outputs": ...}` else."""
    if not outputs:
        raise invalid("Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    if fmt is RequestFormat.COLUMNAR:
        return ('{"outputs": ' + _outputs_texts(outputs, names, 0)[0] + "}").encode()
    batch = -1
    for name in names:
        array = outputs[name]
        if array.ndim == 0:
            raise invalid(f"Tensor name: {name} has no shape information ")
        if batch >= 0 and array.shape[0] != batch:
            raise invalid(
                f"Tensor name: {name} has inconsistent batch size: {array.shape[0]} expecting: "
                f"{batch}"
            )
        batch = array.shape[0]
    return ('{"predictions": [' + ", ".join(_outputs_texts(outputs, names, 1)) + "]}").encode()


def classify_response_json(classifications: Sequence[Sequence[tuple[str, float]]]) -> bytes:
    """MakeJsonFromClassificationResult: `{"results": [[[label, score], ...], ...]}`."""
    if not classifications:
        raise invalid("Cannot convert empty ClassificationResults to JSON")
    scores = iter(_format_floats([score for row in classifications for _, score in row], False))
    rows = []
    for classes in classifications:
        pairs = (f"[{orjson.dumps(label).decode()}, {next(scores)}]" for label, _ in classes)
        rows.append("[" + ", ".join(pairs) + "]")
    return ('{"results": [' + ", ".join(rows) + "]}").encode()


def regress_response_json(values: Sequence[float]) -> bytes:
    """MakeJsonFromRegressionResult: `{"results": [v1, v2, ...]}`."""
    if not len(values):
        raise invalid("Cannot convert empty RegressionResults to JSON")
    texts = _format_floats([float(v) for v in values], False)
    return ('{"results": [' + ", ".join(texts) + "]}").encode()


def error_json(message: str) -> bytes:
    """MakeJsonFromStatus: the pretty-printed `{"error": "<message>"}` body."""
    return b'{\n    "error": ' + orjson.dumps(message) + b"\n}"


# --------------------------------------------------------------------------------------------
# JSON -> tf.Example (classify, regress)


def _add_feature_value(value: Any, name: str, feature: feature_pb2.Feature) -> None:
    kind = feature.WhichOneof("kind")

    def need(expected: str) -> None:
        if kind is not None and kind != expected:
            raise invalid(
                f"Unexpected element type in feature: {name} expecting type: "
                f"{kind.split('_')[0]}"
            )

    if value is None or isinstance(value, list):
        raise invalid(f"Feature: {name} has element with unexpected JSON type: {_json_type(value)}")
    if isinstance(value, bool):
        need("int64_list")
        feature.int64_list.value.append(1 if value else 0)
    elif isinstance(value, dict):
        if not _is_b64(value):
            raise invalid(f"Feature: {name} has element with unexpected JSON type: Object")
        need("bytes_list")
        feature.bytes_list.value.append(_decode_b64(value))
    elif isinstance(value, str):
        need("bytes_list")
        feature.bytes_list.value.append(value.encode("utf-8", "surrogatepass"))
    elif isinstance(value, float):
        need("float_list")
        _check_lossless(value, types_pb2.DT_FLOAT)
        feature.float_list.value.append(value)
    elif isinstance(value, int):
        need("int64_list")
        if value > 2**63 - 1:
            raise invalid(f"Feature: {name} has uint64 element. Only int64 is supported.")
        if value < -(2**63):
            raise invalid(f"Feature: {name} has element with unexpected JSON type: Number")
        feature.int64_list.value.append(value)
    else:  # pragma: no cover - json produces no other types
        raise invalid(f"Feature: {name} has element with unexpected JSON type: {type(value)}")


def _example_from_json(value: Any) -> example_pb2.Example:
    if not isinstance(value, dict):
        raise invalid(f"Example must be JSON object but got JSON {_json_type(value)}")
    example = example_pb2.Example()
    for name, content in value.items():
        feature = example.features.feature[name]
        for item in content if isinstance(content, list) else [content]:
            _add_feature_value(item, name, feature)
    return example


def examples_from_json(
    doc: Mapping[str, Any], method: str
) -> tuple[list[example_pb2.Example], example_pb2.Example | None]:
    """FillClassifyRegressRequestFromJson: `examples` (and optional `context`) -> tf.Examples."""
    context = _example_from_json(doc["context"]) if "context" in doc else None
    if "examples" not in doc:
        raise invalid(
            f"JSON Value: {_short_json(doc)} When method is {method}, key 'examples' is expected "
            "and was not found"
        )
    examples = doc["examples"]
    if not isinstance(examples, list):
        raise invalid(f"JSON Value: {_short_json(doc)} Expecting 'examples' value to be an list/array")
    if not examples:
        raise invalid(f"JSON Value: {_short_json(doc)} 'examples' value is an empty array")
    return [_example_from_json(item) for item in examples], context


def signature_name_from_json(doc: Mapping[str, Any]) -> str:
    name = doc.get("signature_name", "")
    if not isinstance(name, str):
        raise invalid(
            f"JSON Value: {_short_json(doc)} not formatted correctly. 'signature_name' key must be "
            "a string value."
        )
    return name
