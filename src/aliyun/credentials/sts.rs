//! RRSA / OIDC: exchange the Kubernetes service-account token for STS
//! credentials with `AssumeRoleWithOIDC` (an unsigned call). The token file
//! is read again at every refresh, since the kubelet rotates it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::refresh::{Fetch, FetchFuture, Temporary};
use super::{Credentials, CredentialsError};
use crate::aliyun::error::sanitize_message;
use crate::clock::{self, Clock};
use crate::secret::Secret;

const NAME: &str = "oidc";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcSettings {
    pub role_arn: String,
    pub provider_arn: String,
    pub token_file: PathBuf,
    pub session_name: String,
    pub duration_seconds: u32,
    /// Base URL of STS, e.g. `https://sts.aliyuncs.com`.
    pub sts_endpoint: String,
}

pub struct OidcFetcher {
    settings: OidcSettings,
    http: reqwest::Client,
    /// The request's `Timestamp`; `Refreshing` sets its own.
    clock: Arc<dyn Clock>,
}

impl OidcFetcher {
    pub fn new(settings: OidcSettings) -> Result<Self, CredentialsError> {
        Ok(OidcFetcher {
            settings,
            http: http_client(Duration::from_secs(10))?,
            clock: clock::system(),
        })
    }

    /// Takes the request's `Timestamp` from `clock` (done by `Refreshing`).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    async fn assume_role(&self) -> Result<Temporary, CredentialsError> {
        let fail = |message: String| CredentialsError {
            source_name: NAME,
            message,
        };
        let path = &self.settings.token_file;
        let token = tokio::fs::read_to_string(path).await.map_err(|e| {
            fail(format!(
                "cannot read the OIDC token file {}: {e}",
                path.display()
            ))
        })?;
        let token = token.trim();
        if token.is_empty() {
            return Err(fail(format!(
                "the OIDC token file {} is empty",
                path.display()
            )));
        }
        let timestamp = sts_timestamp(self.clock.now());
        let url = format!(
            "{}/?Action=AssumeRoleWithOIDC&Version=2015-04-01&Format=JSON&Timestamp={}",
            self.settings.sts_endpoint.trim_end_matches('/'),
            crate::aliyun::sign::percent_encode(&timestamp)
        );
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("RoleArn", &self.settings.role_arn)
            .append_pair("OIDCProviderArn", &self.settings.provider_arn)
            .append_pair("OIDCToken", token)
            .append_pair("RoleSessionName", &self.settings.session_name)
            .append_pair(
                "DurationSeconds",
                &self.settings.duration_seconds.to_string(),
            )
            .finish();
        let response = self
            .http
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| {
                fail(format!(
                    "cannot reach STS at {}: {}",
                    self.settings.sts_endpoint,
                    short(&e)
                ))
            })?;
        let status = response.status().as_u16();
        let body = read_small(response)
            .await
            .map_err(|e| fail(format!("cannot read the STS answer: {e}")))?;
        parse_sts_answer("AssumeRoleWithOIDC", status, &body).map_err(fail)
    }
}

impl Fetch for OidcFetcher {
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

/// STS's `Timestamp`: `yyyy-MM-ddTHH:mm:ssZ`, UTC.
pub(super) fn sts_timestamp(now: DateTime<Utc>) -> String {
    now.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[derive(Deserialize)]
struct StsAnswer {
    #[serde(rename = "Credentials")]
    credentials: Option<WireCredentials>,
    #[serde(rename = "Code")]
    code: Option<String>,
    #[serde(rename = "Message")]
    message: Option<String>,
}

/// The credentials document of STS and of the ECS metadata service.
#[derive(Deserialize)]
pub(super) struct WireCredentials {
    #[serde(rename = "AccessKeyId")]
    access_key_id: Option<String>,
    #[serde(rename = "AccessKeySecret")]
    access_key_secret: Option<String>,
    #[serde(rename = "SecurityToken")]
    security_token: Option<String>,
    #[serde(rename = "Expiration")]
    expiration: Option<String>,
}

impl WireCredentials {
    /// Checks every field; an error names the missing or broken one.
    pub(super) fn into_temporary(self) -> Result<Temporary, String> {
        let need = |v: Option<String>, name: &str| {
            v.filter(|s| !s.is_empty())
                .ok_or(format!("the answer has no {name}"))
        };
        let access_key_id = need(self.access_key_id, "AccessKeyId")?;
        let secret = need(self.access_key_secret, "AccessKeySecret")?;
        let token = need(self.security_token, "SecurityToken")?;
        let raw = need(self.expiration, "Expiration")?;
        let expiration = DateTime::parse_from_rfc3339(&raw)
            .map_err(|_| format!("Expiration {raw:?} is not a time"))?
            .with_timezone(&Utc);
        Ok(Temporary {
            credentials: Credentials {
                access_key_id,
                access_key_secret: Secret::new(secret),
                security_token: Some(Secret::new(token)),
            },
            expiration,
        })
    }
}

/// The credentials of an STS answer to `action`, or an error naming the
/// API's `Code` (or `http_<status>`) with its sanitised message.
pub(super) fn parse_sts_answer(
    action: &str,
    status: u16,
    body: &[u8],
) -> Result<Temporary, String> {
    let answer: StsAnswer = serde_json::from_slice(body)
        .map_err(|_| format!("STS answered HTTP {status} with a body that is not JSON"))?;
    if !(200..300).contains(&status) || answer.credentials.is_none() {
        let code = answer.code.unwrap_or_else(|| format!("http_{status}"));
        let message = sanitize_message(&answer.message.unwrap_or_default());
        return Err(format!("{action} failed: {code}: {message}"));
    }
    answer.credentials.map_or(
        Err("the answer has no Credentials".into()),
        WireCredentials::into_temporary,
    )
}

pub(super) fn http_client(timeout: Duration) -> Result<reqwest::Client, CredentialsError> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2).min(timeout))
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| CredentialsError {
            source_name: "http",
            message: short(&e),
        })
}

/// A credentials answer: a few hundred bytes; more than 64 KiB is refused
/// rather than buffered.
pub(super) async fn read_small(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    const LIMIT: usize = 64 << 10;
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| short(&e))? {
        if body.len() + chunk.len() > LIMIT {
            return Err(format!("the answer is larger than {} KiB", LIMIT >> 10));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A reqwest error without its URL.
pub(super) fn short(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "cannot connect".into()
    } else {
        "request failed".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sts_answers() {
        let ok = br#"{"RequestId":"r","Credentials":{"AccessKeyId":"STS.id","AccessKeySecret":"s","SecurityToken":"t","Expiration":"2026-11-26T06:00:00Z"}}"#;
        let t = parse_sts_answer("AssumeRoleWithOIDC", 200, ok).unwrap();
        assert_eq!(t.credentials.access_key_id, "STS.id");
        assert_eq!(t.expiration.to_rfc3339(), "2026-11-26T06:00:00+00:00");
        let err = parse_sts_answer(
            "AssumeRoleWithOIDC",
            400,
            br#"{"Code":"AuthenticationFail.OIDCToken.Invalid","Message":"bad token"}"#,
        )
        .unwrap_err();
        assert!(
            err.contains("AuthenticationFail.OIDCToken.Invalid"),
            "{err}"
        );
        let err = parse_sts_answer("AssumeRoleWithOIDC", 200, br#"{"Credentials":{"AccessKeyId":"a","AccessKeySecret":"s","Expiration":"2026-11-26T06:00:00Z"}}"#).unwrap_err();
        assert!(err.contains("SecurityToken"), "{err}");
        assert!(parse_sts_answer("AssumeRoleWithOIDC", 200, b"<html>")
            .unwrap_err()
            .contains("not JSON"));
    }
}
