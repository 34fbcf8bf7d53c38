"""MLflow peer: a pyfunc model wrapping the SavedModel, saved once, then `mlflow models serve`.

    python mlflow_app.py save SAVED_MODEL_DIR MLFLOW_MODEL_DIR   # in the mlflow venv
    mlflow models serve -m MLFLOW_MODEL_DIR --env-manager local -w 1 -h 127.0.0.1 -p PORT
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import mlflow.pyfunc


class SavedModelPyfunc(mlflow.pyfunc.PythonModel):
    """`load_context` loads the SavedModel artifact; `predict` calls serving_default."""

    def load_context(self, context: Any) -> None:
        from tf_signature import Signature

        self.signature = Signature(context.artifacts["saved_model"])

    def predict(self, context: Any, model_input: Any, params: Any = None) -> dict:
        import numpy as np
        from tf_signature import plain

        array = model_input.to_numpy() if hasattr(model_input, "to_numpy") else np.asarray(model_input)
        return {name: plain(value) for name, value in self.signature(array).items()}


def save(saved_model: str, destination: str) -> None:
    here = Path(__file__).resolve().parent
    mlflow.pyfunc.save_model(path=destination, python_model=SavedModelPyfunc(),
                             artifacts={"saved_model": saved_model},
                             code_paths=[str(here / "tf_signature.py"), str(here / "mlflow_app.py")])


if __name__ == "__main__":
    if sys.argv[1:2] != ["save"] or len(sys.argv) != 4:
        raise SystemExit("usage: mlflow_app.py save SAVED_MODEL_DIR MLFLOW_MODEL_DIR")
    save(sys.argv[2], sys.argv[3])
