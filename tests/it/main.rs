//! Integration tests: one binary, one module per concern, real sockets.

mod api_client;
mod backup_calls;
mod binary;
mod credentials;
mod decode_bounds;
mod decode_props;
mod exporter;
mod fake_cloud;
mod fake_fleet;
mod fake_products;
mod fleet;
mod golden_metrics;
mod helpers;
mod products;
mod transport;
mod web;
