"""gRPC wire contract of the mvirt services: the .proto files and the Python code generated
from them (regenerate with ``python -m mvirt.proto.generate``)."""
