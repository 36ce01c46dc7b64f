//! Credentials and where they come from.
//!
//! - `chain`: which source to use (the official libraries' order).
//! - `refresh`: temporary credentials, refreshed before they expire.
//! - `sts`: RRSA / OIDC through `AssumeRoleWithOIDC`.
//! - `assume_role`: a RAM role's credentials through STS `AssumeRole`,
//!   signed with base credentials from another provider.
//! - `ecs`: the ECS instance RAM role from the metadata service.
//! - `files`: the CLI's config.json and the credentials INI file.

pub mod assume_role;
pub mod chain;
pub mod ecs;
pub mod files;
pub mod refresh;
pub mod sts;

use std::future::Future;
use std::pin::Pin;

use crate::secret::Secret;

/// One set of credentials. `Debug` shows the key ID only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub access_key_secret: Secret,
    /// Present for STS (temporary) credentials; sent as `SecurityToken`.
    pub security_token: Option<Secret>,
}

pub type CredentialsFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Credentials, CredentialsError>> + Send + 'a>>;

/// A source of credentials, asked before every request so that a source of
/// temporary credentials can hand out fresh ones.
pub trait CredentialsProvider: Send + Sync + 'static {
    /// Short name for logs and metrics, e.g. `env`.
    fn name(&self) -> &'static str;
    fn credentials(&self) -> CredentialsFuture<'_>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}: {message}")]
pub struct CredentialsError {
    pub source_name: &'static str,
    pub message: String,
}

/// Fixed credentials: from the environment, or the demo's built-in ones.
pub struct StaticProvider {
    name: &'static str,
    credentials: Credentials,
}

impl StaticProvider {
    pub fn new(name: &'static str, credentials: Credentials) -> Self {
        StaticProvider { name, credentials }
    }
}

impl CredentialsProvider for StaticProvider {
    fn name(&self) -> &'static str {
        self.name
    }

    fn credentials(&self) -> CredentialsFuture<'_> {
        let credentials = self.credentials.clone();
        Box::pin(async move { Ok(credentials) })
    }
}

/// Reads `ALIBABA_CLOUD_ACCESS_KEY_ID`, `ALIBABA_CLOUD_ACCESS_KEY_SECRET` and
/// the optional `ALIBABA_CLOUD_SECURITY_TOKEN` through `lookup`. `Ok(None)`
/// when neither key variable is set; an error names the variable missing.
pub fn from_env(
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Credentials>, CredentialsError> {
    let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
    let id = get("ALIBABA_CLOUD_ACCESS_KEY_ID");
    let secret = get("ALIBABA_CLOUD_ACCESS_KEY_SECRET");
    let token = get("ALIBABA_CLOUD_SECURITY_TOKEN");
    let missing = |name: &str| CredentialsError {
        source_name: "env",
        message: format!("{name} is not set"),
    };
    match (id, secret) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(missing("ALIBABA_CLOUD_ACCESS_KEY_SECRET")),
        (None, Some(_)) => Err(missing("ALIBABA_CLOUD_ACCESS_KEY_ID")),
        (Some(id), Some(secret)) => Ok(Some(Credentials {
            access_key_id: id.trim().to_string(),
            access_key_secret: Secret::new(secret.trim()),
            security_token: token.map(|t| Secret::new(t.trim())),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn reads_the_alibaba_variables() {
        let creds = from_env(&env(&[
            ("ALIBABA_CLOUD_ACCESS_KEY_ID", "LTAIid"),
            ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "s3cret"),
            ("ALIBABA_CLOUD_SECURITY_TOKEN", "tok"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(creds.access_key_id, "LTAIid");
        assert_eq!(creds.access_key_secret.expose(), "s3cret");
        assert_eq!(
            creds.security_token.as_ref().map(|t| t.expose()),
            Some("tok")
        );
        let debug = format!("{creds:?}");
        assert!(
            !debug.contains("s3cret") && !debug.contains("tok\""),
            "{debug}"
        );
    }

    #[test]
    fn half_a_key_names_the_missing_variable() {
        let err = from_env(&env(&[("ALIBABA_CLOUD_ACCESS_KEY_ID", "id")])).unwrap_err();
        assert!(err.to_string().contains("ALIBABA_CLOUD_ACCESS_KEY_SECRET"));
        assert_eq!(from_env(&env(&[])).unwrap(), None);
    }
}
