"""gRPC servicers, one module per service; each method validates, calls the engine and converts (3-15 lines)."""
