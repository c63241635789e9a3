"""The mongodb backend's pieces: the client and schema, the state store, repairs, registry."""
