"""KServe peer: a `kserve.Model` answering V1 (`:predict`) and V2 / Open Inference (REST and gRPC).

    python kserve_app.py --model_name bench --model_dir DIR --http_port P --grpc_port G
    python kserve_app.py grpc-request INPUT_NPY NAME OUT_BIN   # a ModelInferRequest, serialized
    python kserve_app.py grpc-call HOST:PORT REQUEST_BIN        # the answer's outputs as JSON
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import numpy as np


def serve(argv: list[str]) -> None:
    import kserve
    from kserve import InferOutput, InferRequest, InferResponse
    from tf_signature import Signature, rows

    class SavedModelKServe(kserve.Model):
        def __init__(self, name: str, model_dir: str):
            super().__init__(name)
            self.signature = Signature(model_dir)
            self.ready = True

        def predict(self, payload: Any, headers: Any = None, response_headers: Any = None) -> Any:
            if isinstance(payload, InferRequest):
                outputs = self.signature(payload.inputs[0].as_numpy())
                infer_outputs = []
                for name, value in outputs.items():
                    if value.dtype.kind in "SO":
                        continue  # V2 BYTES outputs are left out: the numeric outputs are compared
                    output = InferOutput(name=name, shape=list(value.shape),
                                         datatype="FP32" if value.dtype == np.float32 else "INT64")
                    output.set_data_from_numpy(value, binary_data=False)
                    infer_outputs.append(output)
                return InferResponse(response_id=payload.id or "0", model_name=self.name,
                                     infer_outputs=infer_outputs)
            return {"predictions": rows(self.signature(payload["instances"]))}

    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
    parser.add_argument("--model_dir", required=True)
    args, _ = parser.parse_known_args(argv)
    model = SavedModelKServe(args.model_name, args.model_dir)
    kserve.ModelServer(http_port=args.http_port, grpc_port=args.grpc_port, workers=1).start([model])


def grpc_request(input_npy: str, name: str, out: str) -> None:
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    array = np.load(input_npy)
    request = pb.ModelInferRequest(model_name=name, id="0")
    request.inputs.add(name="input", datatype="FP32", shape=list(array.shape))
    request.raw_input_contents.append(array.astype(np.float32).tobytes())
    with open(out, "wb") as file:
        file.write(request.SerializeToString())


def grpc_call(target: str, request_bin: str) -> None:
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer",
                                   response_deserializer=pb.ModelInferResponse.FromString)
        with open(request_bin, "rb") as file:
            response = call(file.read(), timeout=30)
    outputs = {}
    for index, output in enumerate(response.outputs):
        if index < len(response.raw_output_contents):
            dtype = np.float32 if output.datatype == "FP32" else np.int64
            value = np.frombuffer(response.raw_output_contents[index], dtype=dtype)
        else:
            value = np.array(output.contents.fp32_contents or output.contents.int64_contents)
        outputs[output.name] = value.reshape(list(output.shape)).tolist()
    print(json.dumps(outputs))


if __name__ == "__main__":
    if sys.argv[1:2] == ["grpc-request"]:
        grpc_request(*sys.argv[2:5])
    elif sys.argv[1:2] == ["grpc-call"]:
        grpc_call(*sys.argv[2:4])
    else:
        serve(sys.argv[1:])
