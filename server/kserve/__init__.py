"""munet-serve over the KServe v2 / Open Inference Protocol: each task is a model and each published version a
model version. `models.py` is the protocol's view of the server's domain; `grpc_service.py` (on the native gRPC
port) and `rest.py` (HTTP/REST on --http-port) only translate their wire formats to and from it."""
