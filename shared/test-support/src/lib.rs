//! Helpers for tests: spawn the suite, mint tokens, receive OTLP in process
