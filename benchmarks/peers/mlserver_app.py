"""Seldon MLServer peer: a custom `MLModel` runtime calling the SavedModel at the model's `uri`.

    PYTHONPATH=benchmarks/peers mlserver start DIR   # DIR holds settings.json and model-settings.json
"""

from __future__ import annotations

from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class SavedModelRuntime(MLModel):
    """V2 inference: the first input as a numpy array in, every numeric output out."""

    async def load(self) -> bool:
        from tf_signature import Signature

        self.signature = Signature(self.settings.parameters.uri)
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        outputs = self.signature(NumpyCodec.decode_input(payload.inputs[0]))
        encoded = []
        for name, value in outputs.items():
            if value.dtype.kind in "SO":
                continue  # V2 BYTES outputs are left out: the numeric outputs are compared
            output = NumpyCodec.encode_output(name, value)
            output.shape = list(value.shape)  # the codec reports a 1-D output as [n, 1]
            encoded.append(output)
        return InferenceResponse(model_name=self.name, id=payload.id, outputs=encoded)
