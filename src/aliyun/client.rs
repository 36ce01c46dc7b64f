//! A generic client for Alibaba Cloud RPC-style APIs: signs each request,
//! waits for a token of its account's rate limit, bounds it with a timeout,
//! retries what is worth retrying, and reports every attempt to an observer
//! (the exporter turns that into metrics).
//!
//! Every request is a `POST /` whose parameters travel in an
//! `application/x-www-form-urlencoded` body: the URL holds no parameter at
//! all, so proxies and access logs that record URLs never see a signature,
//! a security token or a key ID. With signature V2 the body carries the
//! common parameters (`SecurityToken` and `Signature` among them) too; with
//! V3 those are headers and the body carries the action's parameters only.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use reqwest::header::HeaderMap;
use serde::Deserialize;

use super::credentials::{Credentials, CredentialsProvider};
use super::error::{sanitize_message, ApiError};
use super::ratelimit::RateLimiter;
use super::retry::RetryPolicy;
use super::{lenient, sign, sign_v3};
use crate::clock::Clock;

/// Told about every attempt of every call, failed or not.
pub trait CallObserver: Send + Sync + 'static {
    /// `code` is `Success`, the API's error code, or `http_<status>`,
    /// `timeout`, `transport`, `decode`.
    fn attempt(&self, call: &CallLabels, action: &str, code: &str, elapsed: Duration);
}

/// An observer that ignores everything.
pub struct NoObserver;

impl CallObserver for NoObserver {
    fn attempt(&self, _: &CallLabels, _: &str, _: &str, _: Duration) {}
}

/// Whose calls these are, for the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallLabels {
    pub account: Arc<str>,
    /// The region the calls are about (`all` for DescribeRegions).
    pub region_id: Arc<str>,
}

impl Default for CallLabels {
    fn default() -> Self {
        CallLabels {
            account: "default".into(),
            region_id: "".into(),
        }
    }
}

/// How requests are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SignatureVersion {
    /// HMAC-SHA1 over the parameters (`Signature`, `SignatureNonce`, …).
    #[default]
    V2,
    /// `ACS3-HMAC-SHA256` over the method, headers and body hash
    /// (`Authorization`, `x-acs-*` headers), as Alibaba's current SDKs sign.
    V3,
}

impl SignatureVersion {
    /// `v2` or `v3`, as the flag and the config file spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureVersion::V2 => "v2",
            SignatureVersion::V3 => "v3",
        }
    }
}

impl std::str::FromStr for SignatureVersion {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "v2" => Ok(SignatureVersion::V2),
            "v3" => Ok(SignatureVersion::V3),
            _ => Err(format!("{:?} is not v2 or v3", raw.trim())),
        }
    }
}

/// The form body's content type.
const FORM: &str = "application/x-www-form-urlencoded";

/// Settings of one client (one product's API at one endpoint).
#[derive(Clone)]
pub struct ClientSettings {
    /// Base URL, e.g. `https://r-kvstore.aliyuncs.com` or `http://127.0.0.1:8080`.
    pub endpoint: String,
    pub labels: CallLabels,
    /// The product's API version, e.g. `2015-01-01`.
    pub version: &'static str,
    /// Deadline of one whole HTTP request: connect, send, receive.
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

pub struct RpcClient {
    /// Cheap to clone: every client of the process shares one pool.
    http: reqwest::Client,
    settings: ClientSettings,
    credentials: Arc<dyn CredentialsProvider>,
    /// The account's bucket, shared by all its clients; `None` is unlimited.
    limiter: Option<Arc<RateLimiter>>,
    observer: Arc<dyn CallObserver>,
    clock: Arc<dyn Clock>,
    signature: SignatureVersion,
}

/// A successful answer: the decoded value. (Its request ID is kept only
/// with errors, where it is logged for Alibaba's support.)
#[derive(Debug)]
pub struct Answer<T> {
    pub value: T,
}

/// The result of one attempt, with the server's retry-after wish.
struct Attempt<T> {
    result: Result<Answer<T>, ApiError>,
    retry_after: Option<Duration>,
}

impl RpcClient {
    pub fn new(
        settings: ClientSettings,
        credentials: Arc<dyn CredentialsProvider>,
        observer: Arc<dyn CallObserver>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ApiError> {
        let http = reqwest::Client::builder()
            .connect_timeout(settings.timeout)
            .user_agent(concat!(
                "aliyun-backup-exporter/",
                env!("CARGO_PKG_VERSION")
            ))
            // The API never redirects; a redirect would take the signed request elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ApiError::Transport(describe_reqwest_error(&e)))?;
        Ok(RpcClient {
            http,
            settings,
            credentials,
            limiter: None,
            observer,
            clock,
            signature: SignatureVersion::default(),
        })
    }

    /// Signs with `version` (V2 until told otherwise).
    pub fn with_signature_version(mut self, version: SignatureVersion) -> Self {
        self.signature = version;
        self
    }

    /// Takes a token of `limiter` before every attempt.
    pub fn with_rate_limit(mut self, limiter: Option<Arc<RateLimiter>>) -> Self {
        self.limiter = limiter;
        self
    }

    /// The same client (credentials, rate limit, connection pool) for
    /// another endpoint and region label.
    pub fn for_endpoint(&self, endpoint: String, region_id: Arc<str>) -> RpcClient {
        let mut settings = self.settings.clone();
        settings.endpoint = endpoint;
        settings.labels.region_id = region_id;
        RpcClient {
            http: self.http.clone(),
            settings,
            credentials: self.credentials.clone(),
            limiter: self.limiter.clone(),
            observer: self.observer.clone(),
            clock: self.clock.clone(),
            signature: self.signature,
        }
    }

    /// The same client for another product's API version.
    pub fn with_version(mut self, version: &'static str) -> RpcClient {
        self.settings.version = version;
        self
    }

    pub fn endpoint(&self) -> &str {
        &self.settings.endpoint
    }

    /// Calls `action` with `params`, retrying per the policy but never past
    /// `deadline`; `decode` turns a successful body into a value or says
    /// what is wrong with it.
    pub async fn call<T>(
        &self,
        action: &str,
        params: &[(&str, String)],
        decode: impl Fn(&[u8]) -> Result<T, String>,
        deadline: Instant,
    ) -> Result<Answer<T>, ApiError> {
        let started = Instant::now();
        let mut retry = 0;
        let mut last_error = None;
        loop {
            // A token of the account's rate limit first, outside the
            // attempt's clock (waiting for it is not API latency), and
            // before the credentials: short-lived ones must not run out
            // while the attempt waits for its token.
            if let Some(limiter) = &self.limiter {
                if let Err(e) = limiter.acquire(deadline).await {
                    tracing::debug!(
                        action,
                        wait_ms = e.wait.as_millis() as u64,
                        "no rate-limit token before the deadline"
                    );
                    return Err(last_error.unwrap_or(ApiError::RateLimited(e.wait)));
                }
            }
            // Then the credentials, also outside the attempt's clock: waiting
            // for a refresh is not the API's latency, and no request is sent
            // (or counted) without them.
            let credentials = self
                .credentials
                .credentials()
                .await
                .map_err(|e| ApiError::Credentials(e.to_string()))?;
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(last_error.unwrap_or(ApiError::Timeout(Duration::ZERO)));
            }
            let timeout = self.settings.timeout.min(remaining);
            let attempt_started = Instant::now();
            let attempt = self
                .send(action, params, &credentials, timeout, &decode)
                .await;
            let code = match &attempt.result {
                Ok(_) => "Success".to_string(),
                Err(e) => e.code_label(),
            };
            self.observer.attempt(
                &self.settings.labels,
                action,
                &code,
                attempt_started.elapsed(),
            );
            let error = match attempt.result {
                Ok(answer) => return Ok(answer),
                Err(e) => e,
            };
            if !error.is_retryable() {
                return Err(error);
            }
            retry += 1;
            let wait = self
                .settings
                .retry
                .next_delay(
                    retry,
                    started.elapsed(),
                    attempt.retry_after,
                    fastrand::f64(),
                )
                .filter(|wait| Instant::now() + *wait < deadline);
            match wait {
                Some(wait) => {
                    tracing::debug!(action, code = %error.code_label(), retry, wait_ms = wait.as_millis() as u64, "retrying");
                    last_error = Some(error);
                    tokio::time::sleep(wait).await;
                }
                None => return Err(error),
            }
        }
    }

    async fn send<T>(
        &self,
        action: &str,
        params: &[(&str, String)],
        credentials: &Credentials,
        timeout: Duration,
        decode: &impl Fn(&[u8]) -> Result<T, String>,
    ) -> Attempt<T> {
        let fail = |e| Attempt {
            result: Err(e),
            retry_after: None,
        };
        let signed = sign_request(
            self.signature,
            &self.settings.endpoint,
            self.settings.version,
            action,
            params,
            credentials,
            self.clock.now(),
        );
        let SignedRequest { url, headers, body } = match signed {
            Ok(request) => request,
            Err(e) => return fail(ApiError::Transport(e)),
        };

        // One deadline for the whole exchange, body included.
        let exchange = async {
            let response = self
                .http
                .post(&url)
                .headers(headers)
                .body(body)
                .send()
                .await?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = read_limited(response, MAX_BODY).await?;
            Ok::<_, reqwest::Error>((status, headers, body))
        };
        let (status, headers, body) = match tokio::time::timeout(timeout, exchange).await {
            Err(_) => return fail(ApiError::Timeout(timeout)),
            Ok(Err(e)) if e.is_timeout() => return fail(ApiError::Timeout(timeout)),
            Ok(Err(e)) => return fail(ApiError::Transport(describe_reqwest_error(&e))),
            Ok(Ok(parts)) => parts,
        };
        let request_id = header_request_id(&headers)
            .or_else(|| body.as_deref().and_then(body_request_id))
            .filter(|id| {
                id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        let Some(body) = body else {
            let detail = format!("the answer is larger than {} MiB", MAX_BODY >> 20);
            return fail(ApiError::Decode { detail, request_id });
        };
        if (200..300).contains(&status) {
            let result = match decode(&body) {
                Ok(value) => Ok(Answer { value }),
                Err(detail) => Err(ApiError::Decode { detail, request_id }),
            };
            return Attempt {
                result,
                retry_after: None,
            };
        }
        let retry_after = retry_after(&headers);
        let parsed = lenient::check_depth(&body)
            .ok()
            .and_then(|()| serde_json::from_slice::<ErrorDocument>(&body).ok());
        let error = match parsed {
            Some(doc) if doc.code.as_deref().is_some_and(|c| !c.is_empty()) => {
                let mut message = sanitize_message(&doc.message.unwrap_or_default());
                // Belt and braces: whatever the server echoes, never our secrets.
                for secret in [
                    Some(&credentials.access_key_secret),
                    credentials.security_token.as_ref(),
                ]
                .into_iter()
                .flatten()
                {
                    if !secret.expose().is_empty() {
                        message = message.replace(secret.expose(), "***");
                    }
                }
                ApiError::Api {
                    code: clean_code(doc.code.as_deref().unwrap_or_default()),
                    message,
                    request_id,
                    status,
                }
            }
            _ => ApiError::Http { status },
        };
        Attempt {
            result: Err(error),
            retry_after,
        }
    }
}

/// One signed request, ready to be sent as `POST url` with `headers` and
/// the form `body`. `Debug` shows the URL only.
pub struct SignedRequest {
    /// The endpoint and `/`: no query string, nothing of the request.
    pub url: String,
    pub headers: HeaderMap,
    pub body: String,
}

impl std::fmt::Debug for SignedRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedRequest")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// Signs `action` of the API `api_version` at `endpoint` with `params`, as
/// `version` says, stamped `now`; every signed call of the exporter (the
/// API client, STS `AssumeRole`) is built here. An error names what cannot
/// be sent, never a value.
pub fn sign_request(
    version: SignatureVersion,
    endpoint: &str,
    api_version: &str,
    action: &str,
    params: &[(&str, String)],
    credentials: &Credentials,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<SignedRequest, String> {
    let url = format!("{}/", endpoint.trim_end_matches('/'));
    let timestamp = now.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let mut headers = HeaderMap::new();
    let mut header = |name: &'static str, value: &str| {
        let mut value = reqwest::header::HeaderValue::from_str(value)
            .map_err(|_| format!("{name} cannot be sent in an HTTP header"))?;
        if name == sign_v3::SECURITY_TOKEN || name == "authorization" {
            value.set_sensitive(true);
        }
        headers.insert(name, value);
        Ok::<_, String>(())
    };
    header("content-type", FORM)?;
    match version {
        SignatureVersion::V2 => {
            let mut all: Vec<(&str, String)> = vec![
                ("Action", action.to_string()),
                ("Version", api_version.to_string()),
                ("Format", "JSON".to_string()),
                ("AccessKeyId", credentials.access_key_id.clone()),
                ("SignatureMethod", "HMAC-SHA1".to_string()),
                ("SignatureVersion", "1.0".to_string()),
                ("SignatureNonce", new_nonce()),
                ("Timestamp", timestamp),
            ];
            if let Some(token) = &credentials.security_token {
                all.push(("SecurityToken", token.expose().to_string()));
            }
            all.extend(params.iter().cloned());
            let signature = sign::sign("POST", &all, credentials.access_key_secret.expose());
            all.push(("Signature", signature));
            let body = sign::canonical_query(&all);
            Ok(SignedRequest { url, headers, body })
        }
        SignatureVersion::V3 => {
            // The action's parameters only; `Format` is not needed (the
            // answer is JSON when `Accept` asks for it).
            let body = sign::canonical_query(params);
            let host = host_header(endpoint)
                .ok_or_else(|| "the endpoint has no host to sign".to_string())?;
            let hashed = sign_v3::sha256_hex(body.as_bytes());
            let mut signed: Vec<(&'static str, String)> = vec![
                ("host", host),
                ("content-type", FORM.to_string()),
                (sign_v3::ACTION, action.to_string()),
                (sign_v3::VERSION, api_version.to_string()),
                (sign_v3::DATE, timestamp),
                (sign_v3::NONCE, new_nonce()),
                (sign_v3::CONTENT_SHA256, hashed.clone()),
            ];
            if let Some(token) = &credentials.security_token {
                signed.push((sign_v3::SECURITY_TOKEN, token.expose().to_string()));
            }
            let no_query: [(&str, &str); 0] = [];
            let canonical = sign_v3::canonical_request("POST", &no_query, &signed, &hashed);
            let signature = sign_v3::signature(
                &sign_v3::string_to_sign(&canonical),
                credentials.access_key_secret.expose(),
            );
            let (_, signed_names) = sign_v3::canonical_headers(&signed);
            for (name, value) in &signed {
                header(name, value)?;
            }
            header(
                "authorization",
                &sign_v3::authorization(&credentials.access_key_id, &signed_names, &signature),
            )?;
            header("accept", "application/json")?;
            Ok(SignedRequest { url, headers, body })
        }
    }
}

/// Answers larger than this are refused: a page of 100 backups is ~200 KB,
/// and a broken proxy must not make the exporter buffer without end.
const MAX_BODY: usize = 16 << 20;

/// The body, or `None` if it is larger than `limit`.
async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Option<bytes::Bytes>, reqwest::Error> {
    // One allocation of the announced size (bounded) rather than doubling
    // growth, which held up to twice the body; an answer past the limit is
    // refused before anything is read.
    let announced = response.content_length().unwrap_or(0);
    if announced > limit as u64 {
        return Ok(None);
    }
    let mut body = bytes::BytesMut::with_capacity(announced as usize);
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body.freeze()))
}

/// The API's error code, as it goes into a metric label and the logs: the
/// characters codes are made of, and a bounded length.
fn clean_code(code: &str) -> String {
    let ok = !code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        code.to_string()
    } else {
        "invalid_code".to_string()
    }
}

#[derive(Deserialize)]
struct ErrorDocument {
    #[serde(rename = "Code")]
    code: Option<String>,
    #[serde(rename = "Message")]
    message: Option<String>,
}

/// The `Host` header a request to `endpoint` carries (and V3 signs): the
/// host, with the port when it is not the scheme's default.
fn host_header(endpoint: &str) -> Option<String> {
    let url = url::Url::parse(endpoint).ok()?;
    let host = url.host_str().filter(|h| !h.is_empty())?;
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    })
}

/// A unique value per request; uniqueness is all the API asks of it.
fn new_nonce() -> String {
    let (a, b) = (fastrand::u64(..), fastrand::u64(..));
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        (b >> 48) | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

fn header_request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-acs-request-id")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.to_string())
        .filter(|s| !s.is_empty())
}

/// `RequestId` from a JSON body, if the body is JSON and has one (a string
/// or a number). Read like every answer: nothing else is built, and a
/// `RequestId` that is an array or an object is skipped, not materialised.
fn body_request_id(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct WithId<'a> {
        #[serde(rename = "RequestId", borrow)]
        request_id: Option<lenient::Text<'a>>,
    }
    lenient::check_depth(body).ok()?;
    serde_json::from_slice::<WithId>(body)
        .ok()?
        .request_id?
        .into_string()
}

/// `x-acs-retry-after`, in milliseconds as Alibaba's own SDKs read it.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let ms: u64 = headers
        .get("x-acs-retry-after")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    // An absurd ask is capped; the retry policy's time budget still applies.
    Some(Duration::from_millis(ms.min(60_000)))
}

/// The error's text and causes, without the URL (no parameter is in it any
/// more, but an endpoint can hold a proxy's credentials).
fn describe_reqwest_error(error: &reqwest::Error) -> String {
    use std::error::Error;
    let mut text = if error.is_connect() {
        "cannot connect".to_string()
    } else if error.is_body() || error.is_decode() {
        "error reading the response".to_string()
    } else if error.is_request() {
        "error sending the request".to_string()
    } else {
        "request failed".to_string()
    };
    let mut cause = error.source();
    while let Some(inner) = cause {
        let part = inner.to_string();
        if !part.contains("://") && !part.contains('?') {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_unique_and_uuid_shaped() {
        let a = new_nonce();
        let b = new_nonce();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(a.matches('-').count(), 4);
    }

    #[test]
    fn host_headers_keep_only_explicit_ports() {
        assert_eq!(
            host_header("https://r-kvstore.aliyuncs.com").as_deref(),
            Some("r-kvstore.aliyuncs.com")
        );
        assert_eq!(
            host_header("https://r-kvstore.aliyuncs.com:443/").as_deref(),
            Some("r-kvstore.aliyuncs.com")
        );
        assert_eq!(
            host_header("http://127.0.0.1:8080").as_deref(),
            Some("127.0.0.1:8080")
        );
        assert_eq!(host_header("http://[::1]:9").as_deref(), Some("[::1]:9"));
        assert_eq!(host_header("not a url"), None);
    }

    #[test]
    fn signature_versions_parse() {
        assert_eq!("v2".parse(), Ok(SignatureVersion::V2));
        assert_eq!(" V3 ".parse(), Ok(SignatureVersion::V3));
        let err = "v4".parse::<SignatureVersion>().unwrap_err();
        assert!(err.contains("v2 or v3"), "{err}");
        assert_eq!(SignatureVersion::default(), SignatureVersion::V2);
    }

    #[test]
    fn retry_after_is_read_in_milliseconds() {
        let mut h = HeaderMap::new();
        h.insert("x-acs-retry-after", " 1500 ".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(1500)));
        h.insert("x-acs-retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn error_codes_are_bounded_for_labels() {
        assert_eq!(clean_code("Throttling.User"), "Throttling.User");
        assert_eq!(
            clean_code("InvalidInstanceId.NotFound"),
            "InvalidInstanceId.NotFound"
        );
        assert_eq!(clean_code("a\"b"), "invalid_code");
        assert_eq!(clean_code(&"x".repeat(65)), "invalid_code");
        assert_eq!(clean_code(""), "invalid_code");
    }

    #[test]
    fn request_id_from_body() {
        assert_eq!(
            body_request_id(br#"{"RequestId":"ABC"}"#),
            Some("ABC".into())
        );
        assert_eq!(body_request_id(b"<html>"), None);
        assert_eq!(
            body_request_id(br#"{"RequestId":12345}"#).as_deref(),
            Some("12345")
        );
        // An array or object is skipped (not built), and so is a body that
        // nests past the bound.
        assert_eq!(body_request_id(br#"{"RequestId":[[0,0],{"a":[0]}]}"#), None);
        let deep = format!(
            r#"{{"RequestId":"R","x":{}{}}}"#,
            "[".repeat(100),
            "]".repeat(100)
        );
        assert_eq!(body_request_id(deep.as_bytes()), None);
        let shallow = format!(
            r#"{{"RequestId":"R","x":{}{}}}"#,
            "[".repeat(10),
            "]".repeat(10)
        );
        assert_eq!(body_request_id(shallow.as_bytes()).as_deref(), Some("R"));
    }
}
