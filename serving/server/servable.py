"""One loaded SavedModel version: its SignatureDefs (as protos) and its callable signatures.

The SignatureDefMap comes from `saved_model.pb` itself (so metadata is exactly what TF Serving
reports, `__saved_model_init_op` included); the callables are the concrete functions of
`tf.saved_model.load`, called with arrays already in the signature's dtypes, so no request
ever retraces a tf.function.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from tensorflow.core.protobuf import meta_graph_pb2

from serving.errors import Code, ServingError, invalid
from serving.saved_model import (
    DEFAULT_SIGNATURE,
    INIT_OP_SIGNATURE,
    InputSpec,
    dtype_name,
    numpy_dtype,
    numpy_dtype_name,
    read_signature_defs,
    tensor_dims,
)

logger = logging.getLogger(__name__)

@dataclass
class Signature:
    """A callable signature with what request conversion needs to know about it."""

    name: str
    definition: meta_graph_pb2.SignatureDef
    function: Any
    input_specs: dict[str, InputSpec]
    input_dtypes: dict[str, np.dtype]
    output_names: tuple[str, ...]
    # Known dimensions per input (-1 = any), None for unknown rank; checked before each call.
    input_dims: dict[str, tuple[int, ...] | None] = field(default_factory=dict)
    # Input names in the order of the function's flat arguments when the fast call is safe.
    flat_names: tuple[str, ...] | None = None
    # Cleared by the batcher (serving.server.batching) once a merged call showed an output
    # without the batch as its first dimension; from then on its requests run one by one.
    batchable: bool = True

    def call(self, feeds: Mapping[str, np.ndarray]) -> Mapping[str, Any]:
        """Runs the signature on arrays already in its dtypes.

        The public `ConcreteFunction(**kwargs)` re-binds and re-validates the arguments in
        Python on every call (about 150 us, more than the model itself for small models).
        When the function's inputs are plain keyword-only TensorSpecs that match the
        SignatureDef exactly (checked once at load), the flat call skips that: dtypes and
        shapes have already been checked against the SignatureDef by `Servable.run`.
        """
        import tensorflow as tf

        if self.flat_names is None:
            # Tensors, not arrays: the pruned functions of TF1-format SavedModels
            # (SavedModelBuilder) bind keyword arguments only when they are tf.Tensors.
            return self.function(**{name: tf.convert_to_tensor(array) for name, array in feeds.items()})
        function = self.function
        return function._call_flat(  # noqa: SLF001 - see docstring; TF is pinned (2.16)
            [tf.constant(feeds[name]) for name in self.flat_names], function.captured_inputs
        )


@dataclass
class Servable:
    """A loaded version of a model. Immutable once built; shared by all request threads."""

    name: str
    version: int
    path: str
    signature_defs: dict[str, meta_graph_pb2.SignatureDef]
    signatures: dict[str, Signature]
    loaded: Any = field(repr=False)
    load_seconds: float = 0.0

    def signature(self, signature_name: str) -> Signature:
        """The signature a request names ('' means serving_default), or TF Serving's error."""
        key = signature_name or DEFAULT_SIGNATURE
        signature = self.signatures.get(key)
        if signature is None:
            raise invalid(f"Serving signature name: \"{key}\" not found in signature def")
        return signature

    def run(
        self,
        signature: Signature,
        inputs: Mapping[str, np.ndarray],
        output_filter: tuple[str, ...] = (),
    ) -> dict[str, np.ndarray]:
        """Calls the signature on arrays; returns the requested outputs as numpy arrays."""
        check_input_names(signature, inputs)
        feeds = {}
        for key, array in inputs.items():
            want = signature.input_dtypes[key]
            if array.dtype != want:
                # Numeric casts within a kind (float64 -> float32, int64 -> int32) and up from
                # bool/int are accepted; anything that would truncate or reinterpret is TF's error.
                if want.kind == "O" or array.dtype.kind in "OSU" or not np.can_cast(
                    array.dtype, want, casting="same_kind"
                ):
                    raise invalid(
                        f"Expects arg[{list(signature.input_specs).index(key)}] to be "
                        f"{dtype_name(signature.input_specs[key].dtype)} but "
                        f"{numpy_dtype_name(array.dtype)} is provided"
                    )
                array = array.astype(want)
            feeds[key] = array
        check_shapes(signature, feeds)
        try:
            result = signature.call(feeds)
        except ServingError:
            raise
        except Exception as error:  # noqa: BLE001 - every model failure becomes a status
            raise model_error(error) from None
        names = output_filter or signature.output_names
        outputs = {}
        for name in names:
            if name not in result:
                raise invalid(
                    f"output tensor alias not found in signature: {name} Outputs expected to be "
                    f"in the set {{{','.join(signature.output_names)}}}."
                )
            outputs[name] = result[name].numpy()
        return outputs


@dataclass(frozen=True)
class PredictCall:
    """One predict: arrays for one signature of one loaded version (from either transport)."""

    servable: Servable
    signature: Signature
    inputs: Mapping[str, np.ndarray]
    output_filter: tuple[str, ...] = ()


def check_input_names(signature: Signature, inputs: Mapping[str, Any]) -> None:
    if inputs.keys() == signature.input_specs.keys():
        return
    sent = set(inputs)
    want = set(signature.input_specs)
    raise invalid(
        f"input size does not match signature: {len(sent)}!={len(want)} len({{"
        f"{','.join(sorted(sent))}}}) != len({{{','.join(sorted(want))}}}). Sent extra: "
        f"{{{','.join(sorted(sent - want))}}}. Missing but required: "
        f"{{{','.join(sorted(want - sent))}}}."
    )


def model_error(error: Exception) -> ServingError:
    """Maps an exception raised by a signature call to a status, as TF's Status would carry."""
    import tensorflow as tf

    if isinstance(error, tf.errors.OpError):
        return ServingError(Code(error.error_code), clean_op_message(error.message or type(error).__name__))
    if isinstance(error, (ValueError, TypeError)):
        # Argument binding (rank, shape or dtype against the TensorSpec). TF's text echoes the
        # whole input array, so keep only the reason between the backticks.
        text = str(error)
        if "`" in text:
            text = text.split("`")[1]
        return invalid(text.split("\n")[0][:300])
    return ServingError(Code.INTERNAL, f"{type(error).__name__}: {str(error)[:300]}")


_NOISE_PREFIXES = ("Graph execution error", "Detected at node", "<stack traces", "\t [[", " [[")


def clean_op_message(message: str) -> str:
    """An OpError message without TF's graph-execution preamble and node/op suffixes."""
    lines = [
        line.split(" [Op:")[0].strip()
        for line in message.splitlines()
        if line.strip() and not line.startswith(_NOISE_PREFIXES)
    ]
    text = "; ".join(line for line in lines if line) or message.strip()
    return text[:1000]


def check_shapes(signature: "Signature", inputs: Mapping[str, np.ndarray]) -> None:
    """Rejects arrays whose rank or known dimensions differ from the SignatureDef's shapes."""
    for key, array in inputs.items():
        dims = signature.input_dims.get(key)
        if dims is None:
            continue
        shape = array.shape
        if len(dims) != len(shape) or any(d >= 0 and d != n for d, n in zip(dims, shape)):
            raise invalid(
                f"Input '{key}' has shape {list(shape)} but the signature "
                f"'{signature.name}' expects {list(dims)} (-1 is any size)"
            )


def _flat_names(function: Any, definition: meta_graph_pb2.SignatureDef) -> tuple[str, ...] | None:
    """The flat argument order when `Signature.call` may use the fast path, else None."""
    import inspect

    import tensorflow as tf

    function_type = getattr(function, "function_type", None)
    if function_type is None or not hasattr(function, "_call_flat"):
        return None
    names = []
    for name, parameter in function_type.parameters.items():
        spec = parameter.type_constraint
        if parameter.kind != inspect.Parameter.KEYWORD_ONLY or not isinstance(spec, tf.TensorSpec):
            return None
        info = definition.inputs.get(name)
        if info is None or spec.dtype.as_datatype_enum != info.dtype:
            return None
        names.append(name)
    if set(names) != set(definition.inputs) or len(function.inputs) - len(function.captured_inputs) != len(names):
        return None
    return tuple(names)


def load_servable(
    name: str, version: int, export_dir: str | Path, tags: tuple[str, ...] = ("serve",)
) -> Servable:
    """Loads one version; raises (any exception) when it cannot serve."""
    import tensorflow as tf

    started = time.perf_counter()
    signature_defs = read_signature_defs(export_dir, tags, internal=True)
    loaded = tf.saved_model.load(str(export_dir), tags=list(tags))
    functions = getattr(loaded, "signatures", {})
    signatures: dict[str, Signature] = {}
    for key, definition in signature_defs.items():
        if key == INIT_OP_SIGNATURE or key not in functions:
            continue
        specs = {k: InputSpec(dtype=v.dtype) for k, v in sorted(definition.inputs.items())}
        try:
            dtypes = {k: numpy_dtype(s.dtype) for k, s in specs.items()}
        except ServingError as error:
            logger.warning("%s version %d: signature %s is not callable here: %s", name, version, key, error.message)
            continue
        function = functions[key]
        signatures[key] = Signature(
            name=key,
            definition=definition,
            function=function,
            input_specs=specs,
            input_dtypes=dtypes,
            output_names=tuple(sorted(definition.outputs)),
            input_dims={k: tensor_dims(v) for k, v in definition.inputs.items()},
            flat_names=_flat_names(function, definition),
        )
    if not signatures:
        raise ServingError(
            Code.FAILED_PRECONDITION,
            f"SavedModel at {export_dir} has no callable signatures (found "
            f"{sorted(signature_defs)})",
        )
    servable = Servable(
        name=name,
        version=version,
        path=str(export_dir),
        signature_defs=signature_defs,
        signatures=signatures,
        loaded=loaded,
        load_seconds=time.perf_counter() - started,
    )
    logger.info(
        "loaded %s version %d from %s in %.2f s (signatures: %s)",
        name,
        version,
        export_dir,
        servable.load_seconds,
        ", ".join(sorted(signatures)),
    )
    return servable
