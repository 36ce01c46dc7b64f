//! What can go wrong with one API call, as an enum callers branch on.

use std::time::Duration;

/// The error of one API call (after retries). Its text never holds a secret:
/// no URL (it carries the signature and the token), and the API's echo of
/// its string-to-sign is cut from messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The API answered with an error document.
    #[error("API error {code} (HTTP {status}): {message}{}", request_id_suffix(.request_id))]
    Api {
        code: String,
        message: String,
        request_id: Option<String>,
        status: u16,
    },
    /// An error status without an error document we could read.
    #[error("HTTP status {status} without an error document")]
    Http { status: u16 },
    /// The whole request (connect, send, receive) took longer than allowed.
    #[error("request timed out after {0:?}")]
    Timeout(Duration),
    /// Connection refused, reset, DNS failure, TLS failure…
    #[error("transport error: {0}")]
    Transport(String),
    /// The answer was not what the API promises.
    #[error("cannot decode the response: {detail}{}", request_id_suffix(.request_id))]
    Decode {
        detail: String,
        request_id: Option<String>,
    },
    /// No credentials could be had for the request.
    #[error("no credentials: {0}")]
    Credentials(String),
    /// The account's rate limit had no token for the request before its
    /// deadline (nothing was sent).
    #[error("rate limit: the next request could be sent only in {0:?}, after the deadline")]
    RateLimited(Duration),
}

fn request_id_suffix(request_id: &Option<String>) -> String {
    match request_id {
        Some(id) => format!(" (RequestId {id})"),
        None => String::new(),
    }
}

impl ApiError {
    /// The `code` label of `aliyun_backup_api_requests_total`.
    pub fn code_label(&self) -> String {
        match self {
            ApiError::Api { code, .. } => crate::model::label_value(code, crate::model::MAX_WORD),
            ApiError::Http { status } => format!("http_{status}"),
            ApiError::Timeout(_) => "timeout".into(),
            ApiError::Transport(_) => "transport".into(),
            ApiError::Decode { .. } => "decode".into(),
            ApiError::Credentials(_) => "credentials".into(),
            ApiError::RateLimited(_) => "rate_limited".into(),
        }
    }

    pub fn request_id(&self) -> Option<&str> {
        match self {
            ApiError::Api { request_id, .. } | ApiError::Decode { request_id, .. } => {
                request_id.as_deref()
            }
            _ => None,
        }
    }

    /// Throttling, server-side trouble and the network are worth another try;
    /// auth and parameter errors will not change by trying again.
    pub fn is_retryable(&self) -> bool {
        match self {
            ApiError::Api { code, status, .. } => {
                code.starts_with("Throttling")
                    || *status == 429
                    || *status >= 500
                    || code == "ServiceUnavailable"
            }
            ApiError::Http { status } => *status == 429 || *status >= 500,
            ApiError::Timeout(_) | ApiError::Transport(_) => true,
            ApiError::Decode { .. } | ApiError::Credentials(_) | ApiError::RateLimited(_) => false,
        }
    }
}

/// Cuts what must not be repeated from an API error message: the server's
/// echo of its string-to-sign (it holds the security token) and any URL.
pub fn sanitize_message(message: &str) -> String {
    let lower = message.to_ascii_lowercase();
    let mut cut = message.len();
    for marker in ["string to sign", "stringtosign", "http://", "https://"] {
        if let Some(pos) = lower.find(marker) {
            cut = cut.min(pos);
        }
    }
    let mut kept: String = message[..cut].trim_end().chars().take(300).collect();
    if cut < message.len() {
        kept.push_str(" […redacted]");
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_for_the_requests_counter() {
        let api = ApiError::Api {
            code: "Throttling.User".into(),
            message: "slow down".into(),
            request_id: Some("R1".into()),
            status: 400,
        };
        assert_eq!(api.code_label(), "Throttling.User");
        assert!(api.is_retryable());
        assert_eq!(ApiError::Http { status: 503 }.code_label(), "http_503");
        assert_eq!(
            ApiError::Timeout(Duration::from_secs(1)).code_label(),
            "timeout"
        );
        assert_eq!(ApiError::Transport("x".into()).code_label(), "transport");
        let decode = ApiError::Decode {
            detail: "d".into(),
            request_id: Some("R2".into()),
        };
        assert_eq!(decode.code_label(), "decode");
        assert_eq!(decode.request_id(), Some("R2"));
        assert!(format!("{decode}").contains("RequestId R2"));
    }

    #[test]
    fn auth_and_parameter_errors_are_final() {
        for (code, status) in [
            ("SignatureDoesNotMatch", 400),
            ("InvalidAccessKeyId.NotFound", 404),
            ("Forbidden.RAM", 403),
            ("InvalidInstanceId.NotFound", 404),
        ] {
            let e = ApiError::Api {
                code: code.into(),
                message: String::new(),
                request_id: None,
                status,
            };
            assert!(!e.is_retryable(), "{code}");
        }
        assert!(!ApiError::Http { status: 400 }.is_retryable());
        assert!(ApiError::Http { status: 429 }.is_retryable());
        assert!(ApiError::Http { status: 500 }.is_retryable());
    }

    #[test]
    fn string_to_sign_echo_is_cut() {
        let m = "Specified signature is not matched with our calculation. server string to sign is:GET&%2F&AccessKeyId%3Dx%26SecurityToken%3Dsecret-token";
        let s = sanitize_message(m);
        assert!(!s.contains("secret-token"), "{s}");
        assert!(s.starts_with("Specified signature is not matched"));
        assert!(!sanitize_message("see https://oss/x?Signature=abc").contains("Signature"));
        assert_eq!(sanitize_message("plain"), "plain");
    }
}
