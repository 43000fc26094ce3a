"""Online serving over gRPC: the lsr.v1 service definition and stubs, the engine, server, client and CLI."""
