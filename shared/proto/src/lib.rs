//! Generated protobuf and gRPC code for every Syncline API, with the descriptor set for reflection
