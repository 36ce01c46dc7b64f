//! A generic Alibaba Cloud RPC client.
//!
//! - `sign`: the signature V2 algorithm, pure functions.
//! - `sign_v3`: the signature V3 algorithm (`ACS3-HMAC-SHA256`), pure functions.
//! - `credentials`: credentials and their providers.
//! - `client`: signed requests with timeouts, retries and an attempt observer.
//! - `retry`: the backoff policy.
//! - `error`: what a call can fail with.
//! - `endpoint`: which host serves a product in a region.
//! - `ratelimit`: a token bucket per account, in front of retries.
//! - `json`: `parse_time` (every time shape the API sends) and `quoted` (a
//!   bounded quote of a value for an error).
//! - `lenient`: streaming, bounded decoding of the answers: lenient field
//!   readings, wrapped lists, objects with unknown fields skipped.

pub mod client;
pub mod credentials;
pub mod endpoint;
pub mod error;
pub mod json;
pub mod lenient;
pub mod ratelimit;
pub mod retry;
pub mod sign;
pub mod sign_v3;

pub use client::{
    Answer, CallLabels, CallObserver, ClientSettings, NoObserver, RpcClient, SignatureVersion,
};
pub use credentials::{Credentials, CredentialsProvider, StaticProvider};
pub use error::ApiError;
pub use retry::RetryPolicy;
