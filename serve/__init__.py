"""Online serving over gRPC (service definition, server and client); filled in by the serving issue."""
