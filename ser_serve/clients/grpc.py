"""gRPC inference against TorchServe, with stubs generated from the server's own proto.

The stubs are generated (grpcio-tools) from ``proto/inference.proto`` inside
the installed TorchServe's frontend jar, so they always match the server.
They are written once to ``<cache>/ser-serve/grpc/<jar hash>-protobuf<version>/`` (``$XDG_CACHE_HOME``
or ``~/.cache``) and imported from there, so an installed client works from any directory.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import sys
import zipfile
from importlib import metadata
from pathlib import Path

STUB_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ser-serve" / "grpc"
PROTO_IN_JAR = "proto/inference.proto"


def frontend_jar() -> Path:
    """The model-server.jar of the installed TorchServe (read as a file: clients never import ``ts``)."""
    return Path(metadata.distribution("torchserve").locate_file("ts/frontend/model-server.jar"))


def generate_stubs(out_root: Path = STUB_CACHE) -> Path:
    """Generate inference_pb2(_grpc).py from the jar's proto unless already there; return their folder."""
    jar = frontend_jar()
    digest = hashlib.sha256(jar.read_bytes()).hexdigest()[:12]
    # Generated code only runs on the protobuf runtime its protoc was made for: key the cache by both.
    folder = Path(out_root) / f"{digest}-protobuf{metadata.version('protobuf')}"
    if (folder / "inference_pb2_grpc.py").exists():
        return folder
    import grpc_tools
    from grpc_tools import protoc

    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(jar) as archive:
        (folder / "inference.proto").write_bytes(archive.read(PROTO_IN_JAR))
    # google/protobuf/*.proto ship with grpcio-tools, google/rpc/*.proto with googleapis-common-protos.
    import google.rpc

    includes = [Path(grpc_tools.__file__).parent / "_proto", Path(google.rpc.__path__[0]).parent.parent]
    arguments = ["protoc", f"-I{folder}", *(f"-I{path}" for path in includes),
                 f"--python_out={folder}", f"--grpc_python_out={folder}", str(folder / "inference.proto")]
    if protoc.main(arguments) != 0:
        raise RuntimeError(f"protoc failed to compile {PROTO_IN_JAR} from {jar}")
    return folder


def load_stubs():
    """Import and return the generated (inference_pb2, inference_pb2_grpc) modules."""
    folder = str(generate_stubs())
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module("inference_pb2"), importlib.import_module("inference_pb2_grpc")


class GrpcClient:
    """A channel to TorchServe's gRPC inference API (``host:port``, 7070 by default)."""

    def __init__(self, target: str, token: str | None = None, timeout: float = 120.0):
        import grpc

        self.pb2, pb2_grpc = load_stubs()
        self.channel = grpc.insecure_channel(
            # Above the server's max_request_size (136 MiB): an hour-long recording fits.
            target, options=[("grpc.max_send_message_length", 160 << 20), ("grpc.max_receive_message_length", 64 << 20)]
        )
        self.stub = pb2_grpc.InferenceAPIsServiceStub(self.channel)
        self.metadata = [("authorization", f"Bearer {token}")] if token else []
        self.timeout = timeout

    def predict(self, model: str, data: bytes, **options: str) -> dict:
        """The handler's JSON answer for ``data``: the response schema, or ``{"error": ...}``.

        ``options`` travel as further inputs next to ``data``, e.g.
        ``channels="separate"`` for ``ser-timeline``. TorchServe's gRPC API
        has no per-request status for a handler's 4xx answer; the JSON body
        carries it, as over REST.
        """
        inputs = {"data": data, **{name: value.encode() for name, value in options.items()}}
        request = self.pb2.PredictionsRequest(model_name=model, input=inputs)
        response = self.stub.Predictions(request, metadata=self.metadata, timeout=self.timeout)
        return json.loads(response.prediction)

    def ping(self) -> str:
        from google.protobuf import empty_pb2

        return self.stub.Ping(empty_pb2.Empty(), metadata=self.metadata, timeout=self.timeout).health

    def close(self) -> None:
        self.channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
