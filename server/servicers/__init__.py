"""gRPC servicers, one module per service; each method validates, calls the engine and converts."""
