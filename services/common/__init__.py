"""The shared library: what every service needs and nothing domain-specific.

config (environment settings), db (pool and migrations), auth (JWT, roles,
service tokens), errors (domain errors to google.rpc.Status), telemetry (JSON
logs, OpenTelemetry spans), grpcserver (the handler chain, health, shutdown).
"""
