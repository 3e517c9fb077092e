//! Pieces both sandboxes share: fault injection, deterministic data, TLS, serving.
