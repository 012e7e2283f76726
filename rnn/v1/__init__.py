"""Generated protobuf and gRPC code for the rnn.v1 API (see proto/rnn/v1/); do not edit."""
