//! Integration tests: one binary, one module per concern, real sockets.

mod api_client;
mod binary;
mod exporter;
mod golden_metrics;
mod helpers;
