"""BentoML peer: one `@bentoml.service` calling the SavedModel named by $PEER_MODEL_DIR.

    PEER_MODEL_DIR=DIR bentoml serve bentoml_app:SavedModelService --host 127.0.0.1 --port PORT
"""

from __future__ import annotations

import os

import bentoml
import numpy as np


@bentoml.service
class SavedModelService:
    """POST /predict {"instances": [...]} -> {"predictions": [...]} (TF Serving's row format)."""

    def __init__(self) -> None:
        from tf_signature import Signature

        self.signature = Signature(os.environ["PEER_MODEL_DIR"])

    @bentoml.api
    def predict(self, instances: np.ndarray) -> dict:
        from tf_signature import rows

        return {"predictions": rows(self.signature(instances))}
