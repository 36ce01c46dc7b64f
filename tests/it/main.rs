//! Integration tests: one binary, one module per concern, real sockets.

mod api_client;
mod exporter;
mod helpers;
