"""Seldon MLServer peer: a custom `MLModel` runtime calling the SavedModel at the model's `uri`.

    PYTHONPATH=benchmarks/peers mlserver start DIR   # DIR holds settings.json and model-settings.json
"""

from __future__ import annotations

import numpy as np
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
        return InferenceResponse(
            model_name=self.name, id=payload.id,
            outputs=[NumpyCodec.encode_output(name, value) for name, value in outputs.items()
                     if value.dtype.kind not in "SO" and value.dtype != np.object_])
