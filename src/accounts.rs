//! Builds each account's runtime from its config: where its credentials
//! come from (the default chain, a named profile, named environment
//! variables, or given ones), the RAM role assumed on top of them, its rate
//! limit, and the API client its regional clients derive from. Choosing the
//! source reads the environment and files only; `build` may also ask the
//! ECS metadata service, once, when nothing else is configured.

use std::sync::Arc;
use std::time::Duration;

use crate::aliyun::credentials::assume_role::{AssumeRoleFetcher, AssumeRoleSettings};
use crate::aliyun::credentials::chain::{self, Endpoints, Source};
use crate::aliyun::credentials::refresh::Refreshing;
use crate::aliyun::credentials::{Credentials, CredentialsError, CredentialsProvider};
use crate::aliyun::ratelimit::RateLimiter;
use crate::aliyun::{endpoint, CallLabels, CallObserver, ClientSettings, RetryPolicy, RpcClient};
use crate::clock::Clock;
use crate::config::{AccountConfig, AccountCredentials, CredentialSettings};
use crate::metrics::CredentialsMetrics;
use crate::products::kvstore;
use crate::secret::Secret;
use crate::targets::{Account, ALL_REGIONS};

/// Looks up environment variables (the process's, or a test's).
pub type Env = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// How long assumed-role credentials are asked for.
const ROLE_SESSION_SECONDS: u32 = 3600;

pub struct AccountBuilder {
    pub credentials: CredentialSettings,
    pub env: Env,
    pub clock: Arc<dyn Clock>,
    pub api_observer: Arc<dyn CallObserver>,
    pub credentials_metrics: Arc<CredentialsMetrics>,
    /// Deadline of one API request.
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

impl AccountBuilder {
    fn endpoints(&self) -> Endpoints {
        let env = &*self.env;
        Endpoints {
            sts: self
                .credentials
                .sts_endpoint
                .clone()
                .unwrap_or_else(|| chain::default_sts_endpoint(env)),
            metadata: self.credentials.metadata_endpoint.clone(),
        }
    }

    /// Where the account's base credentials come from. Environment and
    /// files only: `--config.check` runs this too.
    pub fn source(&self, config: &AccountConfig) -> Result<Source, CredentialsError> {
        let env = &*self.env;
        match &config.credentials {
            AccountCredentials::Chain => {
                chain::select(self.credentials.pin, env, &self.endpoints())
            }
            AccountCredentials::Profile(name) => chain::named_profile(name, env, &self.endpoints()),
            AccountCredentials::Env {
                access_key_id,
                access_key_secret,
                security_token,
            } => {
                let get = |name: &str| {
                    env(name)
                        .map(|v| v.trim().to_string())
                        .filter(|v| !v.is_empty())
                        .ok_or_else(|| CredentialsError {
                            source_name: "env",
                            message: format!("{name} is not set"),
                        })
                };
                Ok(Source::Static {
                    name: "env",
                    credentials: Credentials {
                        access_key_id: get(access_key_id)?,
                        access_key_secret: Secret::new(get(access_key_secret)?),
                        security_token: security_token
                            .as_deref()
                            .map(get)
                            .transpose()?
                            .map(Secret::new),
                    },
                })
            }
            AccountCredentials::Static(credentials) => Ok(Source::Static {
                name: "static",
                credentials: credentials.clone(),
            }),
        }
    }

    /// The account's runtime. An error is a configuration problem of the
    /// account (its credentials), said in one line.
    pub async fn build(&self, config: AccountConfig) -> Result<Arc<Account>, CredentialsError> {
        let source = self.source(&config)?;
        let observer = self.credentials_metrics.for_account(&config.name);
        let base = chain::build(&source, self.clock.clone(), observer.clone())?;
        if let Source::Ecs {
            settings,
            probe: true,
        } = &source
        {
            // Nothing else was configured: make sure this is an ECS instance
            // with a role before promising to poll anything.
            if let Err(e) = base.credentials().await {
                return Err(CredentialsError {
                    source_name: "chain",
                    message: format!(
                        "no credentials found: set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET, \
                         or the RRSA variables, or a profile file; the ECS instance RAM role at {} is not available either ({e})",
                        settings.metadata_endpoint
                    ),
                });
            }
        }
        let provider: Arc<dyn CredentialsProvider> = match &config.role {
            None => base,
            Some(role) => {
                let fetcher = AssumeRoleFetcher::new(
                    AssumeRoleSettings {
                        role_arn: role.arn.clone(),
                        session_name: role.session_name.clone(),
                        duration_seconds: ROLE_SESSION_SECONDS,
                        sts_endpoint: self.endpoints().sts,
                    },
                    base,
                )?
                .with_clock(self.clock.clone())
                .with_signature_version(config.signature_version);
                Arc::new(Refreshing::new(fetcher, self.clock.clone(), observer))
            }
        };
        tracing::info!(
            account = %config.name,
            credentials = source.name(),
            role = config.role.as_ref().map_or("-", |r| r.arn.as_str()),
            rate_limit = config.rate_limit,
            signature_version = config.signature_version.as_str(),
            "account ready"
        );
        let template = RpcClient::new(
            ClientSettings {
                endpoint: config
                    .endpoint
                    .clone()
                    .unwrap_or_else(|| endpoint::KVSTORE_CENTRAL.to_string()),
                labels: CallLabels {
                    account: config.name.as_str().into(),
                    region_id: ALL_REGIONS.into(),
                },
                version: kvstore::API_VERSION,
                timeout: self.timeout,
                retry: self.retry,
            },
            provider,
            self.api_observer.clone(),
            self.clock.clone(),
        )
        .map_err(|e| CredentialsError {
            source_name: "http",
            message: e.to_string(),
        })?
        .with_rate_limit(RateLimiter::new(config.rate_limit).map(Arc::new))
        .with_signature_version(config.signature_version);
        Ok(Arc::new(Account::new(config, template)))
    }
}
