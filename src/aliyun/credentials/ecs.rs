//! The ECS instance RAM role, from the instance metadata service: hardened
//! mode first (a session token from `PUT /latest/api/token`), plain reads as
//! a fallback unless disabled; the role name discovered when not given.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::refresh::{Fetch, FetchFuture, Temporary};
use super::sts::{http_client, read_small, short, WireCredentials};
use super::CredentialsError;
use crate::clock::Clock;

const NAME: &str = "ecs-ram-role";
const CREDENTIALS_PATH: &str = "/latest/meta-data/ram/security-credentials/";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcsSettings {
    /// `None`: ask the metadata service which role the instance has.
    pub role_name: Option<String>,
    /// Base URL, `http://100.100.100.200` on ECS.
    pub metadata_endpoint: String,
    /// Refuse plain (token-less) reads: `ALIBABA_CLOUD_IMDSV1_DISABLED`.
    pub hardened_only: bool,
}

pub struct EcsFetcher {
    settings: EcsSettings,
    http: reqwest::Client,
}

impl EcsFetcher {
    pub fn new(settings: EcsSettings) -> Result<Self, CredentialsError> {
        Ok(EcsFetcher {
            settings,
            http: http_client(Duration::from_secs(5))?,
        })
    }

    fn url(&self, path: &str) -> String {
        format!(
            "{}{path}",
            self.settings.metadata_endpoint.trim_end_matches('/')
        )
    }

    /// A metadata session token, or `None` to read without one.
    async fn session_token(&self) -> Result<Option<String>, String> {
        let answer = self
            .http
            .put(self.url("/latest/api/token"))
            .header("X-aliyun-ecs-metadata-token-ttl-seconds", "21600")
            .send()
            .await;
        match answer {
            Ok(r) if r.status().is_success() => match read_small(r).await.map(String::from_utf8) {
                Ok(Ok(token)) if !token.trim().is_empty() => Ok(Some(token.trim().to_string())),
                _ => self.fallback("an empty or unreadable metadata token"),
            },
            Ok(r) => self.fallback(&format!(
                "HTTP {} for a metadata token",
                r.status().as_u16()
            )),
            Err(e) => self.fallback(&format!("metadata token request: {}", short(&e))),
        }
    }

    fn fallback(&self, why: &str) -> Result<Option<String>, String> {
        if self.settings.hardened_only {
            Err(format!(
                "{why}, and plain reads are disabled (ALIBABA_CLOUD_IMDSV1_DISABLED)"
            ))
        } else {
            tracing::debug!(why, "reading ECS metadata without a session token");
            Ok(None)
        }
    }

    async fn get(&self, path: &str, token: &Option<String>) -> Result<String, String> {
        let mut request = self.http.get(self.url(path));
        if let Some(token) = token {
            request = request.header("X-aliyun-ecs-metadata-token", token);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("GET {path}: {}", short(&e)))?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(format!("GET {path}: HTTP {status}"));
        }
        let body = read_small(response)
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        String::from_utf8(body).map_err(|_| format!("GET {path}: the answer is not text"))
    }

    async fn fetch_credentials(&self) -> Result<Temporary, CredentialsError> {
        let fail = |message: String| CredentialsError {
            source_name: NAME,
            message,
        };
        let token = self.session_token().await.map_err(fail)?;
        let role = match &self.settings.role_name {
            Some(role) => role.clone(),
            None => {
                let listing = self.get(CREDENTIALS_PATH, &token).await.map_err(fail)?;
                listing
                    .lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty())
                    .ok_or_else(|| fail("the instance has no RAM role attached".into()))?
                    .to_string()
            }
        };
        if !role
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        {
            return Err(fail(format!("{role:?} is not a RAM role name")));
        }
        let body = self
            .get(&format!("{CREDENTIALS_PATH}{role}"), &token)
            .await
            .map_err(fail)?;
        #[derive(Deserialize)]
        struct Answer {
            #[serde(rename = "Code")]
            code: Option<String>,
            #[serde(flatten)]
            credentials: WireCredentials,
        }
        let answer: Answer = serde_json::from_str(&body)
            .map_err(|_| fail(format!("the credentials of role {role} are not JSON")))?;
        if answer.code.as_deref() != Some("Success") {
            return Err(fail(format!(
                "the metadata service answered Code {:?} for role {role}",
                answer.code
            )));
        }
        answer
            .credentials
            .into_temporary()
            .map_err(|e| fail(format!("role {role}: {e}")))
    }
}

impl Fetch for EcsFetcher {
    fn name(&self) -> &'static str {
        NAME
    }

    fn fetch(&self) -> FetchFuture<'_> {
        Box::pin(self.fetch_credentials())
    }

    /// The metadata service's requests carry no time.
    fn set_clock(&mut self, _: Arc<dyn Clock>) {}
}
