//! What every gRPC service shares: the server builder with health, reflection, internal auth and graceful shutdown
