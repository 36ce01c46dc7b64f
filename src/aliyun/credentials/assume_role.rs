//! STS `AssumeRole`: temporary credentials of a RAM role (usually in another
//! account), asked for with base credentials from any other provider. The
//! request is signed with the base credentials (V2 unless the account says
//! V3) and sent as a form body, as the API client's requests are, so no URL
//! ever carries the signature or the token.
//! Wrap the fetcher in `refresh::Refreshing` to keep the credentials fresh.

use std::sync::Arc;
use std::time::Duration;

use super::refresh::{Fetch, FetchFuture, Temporary};
use super::sts::{http_client, parse_sts_answer, read_small, short};
use super::{CredentialsError, CredentialsProvider};
use crate::aliyun::client::{sign_request, SignedRequest};
use crate::aliyun::SignatureVersion;
use crate::clock::{self, Clock};

const NAME: &str = "assume-role";

/// STS's API version.
const VERSION: &str = "2015-04-01";

/// The bounds STS puts on `DurationSeconds` (the upper one is the largest
/// maximum session a role can have).
const MIN_DURATION_SECONDS: u32 = 900;
const MAX_DURATION_SECONDS: u32 = 43_200;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssumeRoleSettings {
    /// `acs:ram::<account-id>:role/<name>`.
    pub role_arn: String,
    /// 2–64 characters of `[A-Za-z0-9.@_-]`; shows in the role's audit trail.
    pub session_name: String,
    /// 900 to 43200 (and at most the role's maximum session duration).
    pub duration_seconds: u32,
    /// Base URL of STS, e.g. `https://sts.aliyuncs.com`; a bare host gets
    /// `https://`.
    pub sts_endpoint: String,
}

pub struct AssumeRoleFetcher {
    settings: AssumeRoleSettings,
    /// `sts_endpoint` as a base URL without a trailing slash.
    endpoint: String,
    base: Arc<dyn CredentialsProvider>,
    http: reqwest::Client,
    /// The request's `Timestamp`; `Refreshing` sets its own.
    clock: Arc<dyn Clock>,
    signature: SignatureVersion,
}

fn fail(message: String) -> CredentialsError {
    CredentialsError {
        source_name: NAME,
        message,
    }
}

/// Checks what STS would refuse anyway, so that a typo stops the exporter
/// at start-up rather than failing every refresh.
fn check(settings: &AssumeRoleSettings) -> Result<(), String> {
    let arn_ok = settings
        .role_arn
        .strip_prefix("acs:ram::")
        .and_then(|rest| rest.split_once(":role/"))
        .is_some_and(|(account, name)| !account.is_empty() && !name.is_empty());
    if !arn_ok {
        return Err(format!(
            "the role ARN {:?} is not of the form acs:ram::<account-id>:role/<name>",
            settings.role_arn
        ));
    }
    let name = &settings.session_name;
    let name_ok = (2..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'@' | b'_' | b'-'));
    if !name_ok {
        return Err(format!(
            "the role session name {name:?} must be 2 to 64 characters of A-Z a-z 0-9 . @ _ -"
        ));
    }
    if !(MIN_DURATION_SECONDS..=MAX_DURATION_SECONDS).contains(&settings.duration_seconds) {
        return Err(format!(
            "the session duration must be {MIN_DURATION_SECONDS} to {MAX_DURATION_SECONDS} seconds, not {}",
            settings.duration_seconds
        ));
    }
    if settings.sts_endpoint.trim().is_empty() {
        return Err("the STS endpoint is empty".into());
    }
    Ok(())
}

/// `sts.aliyuncs.com` → `https://sts.aliyuncs.com`; a URL stays as it is.
fn base_url(endpoint: &str) -> String {
    let endpoint = endpoint.trim().trim_end_matches('/');
    if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("https://{endpoint}")
    }
}

impl AssumeRoleFetcher {
    pub fn new(
        settings: AssumeRoleSettings,
        base: Arc<dyn CredentialsProvider>,
    ) -> Result<Self, CredentialsError> {
        check(&settings).map_err(fail)?;
        Ok(AssumeRoleFetcher {
            endpoint: base_url(&settings.sts_endpoint),
            settings,
            base,
            http: http_client(Duration::from_secs(10))?,
            clock: clock::system(),
            signature: SignatureVersion::default(),
        })
    }

    /// Signs with `version` (V2 until told otherwise), like the account's
    /// API calls.
    pub fn with_signature_version(mut self, version: SignatureVersion) -> Self {
        self.signature = version;
        self
    }

    /// Takes the request's `Timestamp` from `clock` (done by `Refreshing`;
    /// without it, and outside `Refreshing`, the system clock).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    async fn assume_role(&self) -> Result<Temporary, CredentialsError> {
        let base = self
            .base
            .credentials()
            .await
            .map_err(|e| fail(format!("no base credentials ({e})")))?;
        let params: Vec<(&str, String)> = vec![
            ("RoleArn", self.settings.role_arn.clone()),
            ("RoleSessionName", self.settings.session_name.clone()),
            (
                "DurationSeconds",
                self.settings.duration_seconds.to_string(),
            ),
        ];
        let SignedRequest { url, headers, body } = sign_request(
            self.signature,
            &self.endpoint,
            VERSION,
            "AssumeRole",
            &params,
            &base,
            self.clock.now(),
        )
        .map_err(fail)?;
        let response = self
            .http
            .post(url)
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                fail(format!(
                    "cannot reach STS at {}: {}",
                    self.endpoint,
                    short(&e)
                ))
            })?;
        let status = response.status().as_u16();
        let body = read_small(response)
            .await
            .map_err(|e| fail(format!("cannot read the STS answer: {e}")))?;
        parse_sts_answer("AssumeRole", status, &body).map_err(|message| {
            // Belt and braces: whatever STS echoes, never the base secrets.
            let mut message = message;
            for secret in [Some(&base.access_key_secret), base.security_token.as_ref()]
                .into_iter()
                .flatten()
                .filter(|s| !s.expose().is_empty())
            {
                message = message.replace(secret.expose(), "***");
            }
            fail(message)
        })
    }
}

impl Fetch for AssumeRoleFetcher {
    fn name(&self) -> &'static str {
        NAME
    }

    fn fetch(&self) -> FetchFuture<'_> {
        Box::pin(self.assume_role())
    }

    fn set_clock(&mut self, clock: Arc<dyn Clock>) {
        self.clock = clock;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> AssumeRoleSettings {
        AssumeRoleSettings {
            role_arn: "acs:ram::1234567890123456:role/backup-reader".into(),
            session_name: "aliyun-backup-exporter".into(),
            duration_seconds: 3600,
            sts_endpoint: "sts.aliyuncs.com".into(),
        }
    }

    #[test]
    fn settings_are_checked() {
        assert_eq!(check(&settings()), Ok(()));
        let bad = |change: fn(&mut AssumeRoleSettings)| {
            let mut s = settings();
            change(&mut s);
            check(&s).unwrap_err()
        };
        assert!(bad(|s| s.role_arn = "backup-reader".into()).contains("role ARN"));
        assert!(bad(|s| s.role_arn = "acs:ram:::role/x".into()).contains("role ARN"));
        assert!(bad(|s| s.session_name = "x".into()).contains("session name"));
        assert!(bad(|s| s.session_name = "no spaces".into()).contains("session name"));
        assert!(bad(|s| s.duration_seconds = 899).contains("900"));
        assert!(bad(|s| s.duration_seconds = 43_201).contains("43200"));
        assert!(bad(|s| s.sts_endpoint = " ".into()).contains("endpoint"));
    }

    #[test]
    fn endpoints_become_base_urls() {
        assert_eq!(base_url("sts.aliyuncs.com"), "https://sts.aliyuncs.com");
        assert_eq!(base_url("http://127.0.0.1:8080/"), "http://127.0.0.1:8080");
        assert_eq!(
            base_url("https://sts-vpc.cn-hangzhou.aliyuncs.com"),
            "https://sts-vpc.cn-hangzhou.aliyuncs.com"
        );
    }
}
