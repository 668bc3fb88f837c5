"""creditmeter's gRPC services, one sub-package per bounded context, plus the shared library."""
