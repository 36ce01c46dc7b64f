//! Which credentials to use, decided the way Alibaba's official credential
//! libraries decide: environment, then OIDC (RRSA), then the CLI profile,
//! then the credentials file, then the ECS instance RAM role. Selection
//! reads the environment and files only; nothing here touches the network.

use std::path::PathBuf;
use std::sync::Arc;

use super::ecs::{EcsFetcher, EcsSettings};
use super::files::{self, Profile};
use super::refresh::{RefreshObserver, Refreshing};
use super::sts::{OidcFetcher, OidcSettings};
use super::{from_env, Credentials, CredentialsError, CredentialsProvider, StaticProvider};
use crate::clock::Clock;

/// `--aliyun.credentials-provider`: the chain, or one source only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pin {
    Auto,
    Env,
    Oidc,
    CliProfile,
    CredentialsFile,
    EcsRamRole,
}

impl std::str::FromStr for Pin {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.trim() {
            "auto" => Pin::Auto,
            "env" => Pin::Env,
            "oidc" => Pin::Oidc,
            "cli-profile" => Pin::CliProfile,
            "credentials-file" => Pin::CredentialsFile,
            "ecs-ram-role" => Pin::EcsRamRole,
            other => {
                return Err(format!(
                    "{other:?} is not one of auto, env, oidc, cli-profile, credentials-file, ecs-ram-role"
                ))
            }
        })
    }
}

/// The chosen source, with everything needed to build its provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Fixed credentials; `name` is where they came from.
    Static {
        name: &'static str,
        credentials: Credentials,
    },
    Oidc(OidcSettings),
    /// `probe`: chosen only because nothing else was configured, so start-up
    /// checks that the metadata service answers at all.
    Ecs {
        settings: EcsSettings,
        probe: bool,
    },
}

impl Source {
    pub fn name(&self) -> &'static str {
        match self {
            Source::Static { name, .. } => name,
            Source::Oidc(_) => "oidc",
            Source::Ecs { .. } => "ecs-ram-role",
        }
    }
}

/// The STS and metadata base URLs (flags, or their defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub sts: String,
    pub metadata: String,
}

/// The default STS endpoint, from `ALIBABA_CLOUD_STS_REGION` and
/// `ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED` as the official libraries read them.
pub fn default_sts_endpoint(env: &dyn Fn(&str) -> Option<String>) -> String {
    let vpc = env("ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED").is_some_and(|v| is_true(&v));
    match env("ALIBABA_CLOUD_STS_REGION").filter(|r| crate::aliyun::endpoint::is_valid_region(r)) {
        Some(region) if vpc => format!("https://sts-vpc.{region}.aliyuncs.com"),
        Some(region) => format!("https://sts.{region}.aliyuncs.com"),
        None => "https://sts.aliyuncs.com".to_string(),
    }
}

pub const DEFAULT_METADATA_ENDPOINT: &str = "http://100.100.100.200";

fn is_true(v: &str) -> bool {
    matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1" | "yes")
}

/// Chooses the credentials source.
pub fn select(
    pin: Pin,
    env: &dyn Fn(&str) -> Option<String>,
    endpoints: &Endpoints,
) -> Result<Source, CredentialsError> {
    let not_configured = |name: &'static str, what: &str| CredentialsError {
        source_name: name,
        message: format!("pinned, but not configured: {what}"),
    };
    match pin {
        Pin::Env => env_source(env)?.ok_or_else(|| {
            not_configured("env", "set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET")
        }),
        Pin::Oidc => oidc_source(env, endpoints)?.ok_or_else(|| {
            not_configured("oidc", "set ALIBABA_CLOUD_ROLE_ARN, ALIBABA_CLOUD_OIDC_PROVIDER_ARN and ALIBABA_CLOUD_OIDC_TOKEN_FILE")
        }),
        Pin::CliProfile => cli_source(env, endpoints)?
            .ok_or_else(|| not_configured("cli-profile", "no ~/.aliyun/config.json (or ALIBABA_CLOUD_CONFIG_FILE)")),
        Pin::CredentialsFile => ini_source(env, endpoints)?.ok_or_else(|| {
            not_configured("credentials-file", "no ~/.alibabacloud/credentials (or ALIBABA_CLOUD_CREDENTIALS_FILE)")
        }),
        Pin::EcsRamRole => Ok(Source::Ecs { settings: ecs_settings(env, endpoints, None), probe: false }),
        Pin::Auto => {
            if let Some(source) = env_source(env)? {
                return Ok(source);
            }
            if let Some(source) = oidc_source(env, endpoints)? {
                return Ok(source);
            }
            if let Some(source) = cli_source(env, endpoints)? {
                return Ok(source);
            }
            if let Some(source) = ini_source(env, endpoints)? {
                return Ok(source);
            }
            if env("ALIBABA_CLOUD_ECS_METADATA_DISABLED").is_some_and(|v| is_true(&v)) {
                return Err(CredentialsError {
                    source_name: "chain",
                    message: "no credentials found: set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET, \
                              or the RRSA variables, or a profile file (the ECS metadata service is disabled)"
                        .into(),
                });
            }
            Ok(Source::Ecs { settings: ecs_settings(env, endpoints, None), probe: true })
        }
    }
}

fn env_source(env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Source>, CredentialsError> {
    Ok(from_env(env)?.map(|credentials| Source::Static {
        name: "env",
        credentials,
    }))
}

fn oidc_source(
    env: &dyn Fn(&str) -> Option<String>,
    endpoints: &Endpoints,
) -> Result<Option<Source>, CredentialsError> {
    let get = |name: &str| {
        env(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    const ROLE: &str = "ALIBABA_CLOUD_ROLE_ARN";
    const PROVIDER: &str = "ALIBABA_CLOUD_OIDC_PROVIDER_ARN";
    const TOKEN_FILE: &str = "ALIBABA_CLOUD_OIDC_TOKEN_FILE";
    let (role_arn, provider_arn, token_file) = match (get(ROLE), get(PROVIDER), get(TOKEN_FILE)) {
        (None, None, None) => return Ok(None),
        (Some(role), Some(provider), Some(file)) => (role, provider, file),
        (role, provider, _) => {
            let missing = match (role, provider) {
                (None, _) => ROLE,
                (_, None) => PROVIDER,
                _ => TOKEN_FILE,
            };
            return Err(CredentialsError {
                source_name: "oidc",
                message: format!("{missing} is not set"),
            });
        }
    };
    // A token file that is named but missing is a broken set-up, said at
    // start-up (it is read again at each refresh, as the kubelet rotates it).
    let token_file = PathBuf::from(token_file);
    if let Err(e) = std::fs::metadata(&token_file) {
        return Err(CredentialsError {
            source_name: "oidc",
            message: format!(
                "ALIBABA_CLOUD_OIDC_TOKEN_FILE={}: {e}",
                token_file.display()
            ),
        });
    }
    Ok(Some(Source::Oidc(OidcSettings {
        role_arn,
        provider_arn,
        token_file,
        session_name: get("ALIBABA_CLOUD_ROLE_SESSION_NAME")
            .unwrap_or_else(|| "aliyun-backup-exporter".into()),
        duration_seconds: 3600,
        sts_endpoint: endpoints.sts.clone(),
    })))
}

/// A profile file: the variable's path (which must exist), or the default
/// path under the home directory (used only if it exists).
fn profile_path(
    env: &dyn Fn(&str) -> Option<String>,
    variable: &str,
    default: &str,
) -> Result<Option<PathBuf>, String> {
    if let Some(path) = env(variable).filter(|p| !p.trim().is_empty()) {
        let path = PathBuf::from(path.trim());
        return if path.is_file() {
            Ok(Some(path))
        } else {
            Err(format!("{variable}={} does not exist", path.display()))
        };
    }
    let Some(home) = env("HOME").filter(|h| !h.is_empty()) else {
        return Ok(None);
    };
    let path = PathBuf::from(home).join(default);
    Ok(path.is_file().then_some(path))
}

fn from_profile(
    profile: Profile,
    name: &'static str,
    env: &dyn Fn(&str) -> Option<String>,
    endpoints: &Endpoints,
) -> Source {
    match profile {
        Profile::Static(credentials) => Source::Static { name, credentials },
        Profile::EcsRamRole(role) => Source::Ecs {
            settings: ecs_settings(env, endpoints, Some(role)),
            probe: false,
        },
    }
}

fn cli_source(
    env: &dyn Fn(&str) -> Option<String>,
    endpoints: &Endpoints,
) -> Result<Option<Source>, CredentialsError> {
    file_source(
        env,
        endpoints,
        "cli-profile",
        "ALIBABA_CLOUD_CONFIG_FILE",
        ".aliyun/config.json",
        files::cli_profile,
    )
}

fn ini_source(
    env: &dyn Fn(&str) -> Option<String>,
    endpoints: &Endpoints,
) -> Result<Option<Source>, CredentialsError> {
    file_source(
        env,
        endpoints,
        "credentials-file",
        "ALIBABA_CLOUD_CREDENTIALS_FILE",
        ".alibabacloud/credentials",
        files::ini_profile,
    )
}

/// A profile file source: found through `variable` or under the home
/// directory, read with `parse`, profile `ALIBABA_CLOUD_PROFILE`.
fn file_source(
    env: &dyn Fn(&str) -> Option<String>,
    endpoints: &Endpoints,
    name: &'static str,
    variable: &str,
    default: &str,
    parse: fn(&std::path::Path, Option<&str>) -> Result<Profile, CredentialsError>,
) -> Result<Option<Source>, CredentialsError> {
    let path = profile_path(env, variable, default).map_err(|message| CredentialsError {
        source_name: name,
        message,
    })?;
    let Some(path) = path else { return Ok(None) };
    let profile = parse(&path, env("ALIBABA_CLOUD_PROFILE").as_deref())?;
    Ok(Some(from_profile(profile, name, env, endpoints)))
}

/// A profile by name, as the config file names it: from the CLI config if
/// it has that profile, else from the credentials file.
pub fn named_profile(
    name: &str,
    env: &dyn Fn(&str) -> Option<String>,
    endpoints: &Endpoints,
) -> Result<Source, CredentialsError> {
    let cli = profile_path(env, "ALIBABA_CLOUD_CONFIG_FILE", ".aliyun/config.json").map_err(
        |message| CredentialsError {
            source_name: "cli-profile",
            message,
        },
    )?;
    let ini = profile_path(
        env,
        "ALIBABA_CLOUD_CREDENTIALS_FILE",
        ".alibabacloud/credentials",
    )
    .map_err(|message| CredentialsError {
        source_name: "credentials-file",
        message,
    })?;
    let mut last_error = None;
    for (path, source, parse) in [
        (
            cli,
            "cli-profile",
            files::cli_profile as fn(&std::path::Path, Option<&str>) -> _,
        ),
        (ini, "credentials-file", files::ini_profile),
    ] {
        let Some(path) = path else { continue };
        match parse(&path, Some(name)) {
            Ok(profile) => return Ok(from_profile(profile, source, env, endpoints)),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or(CredentialsError {
        source_name: "cli-profile",
        message: format!(
            "profile {name:?}: no ~/.aliyun/config.json or ~/.alibabacloud/credentials \
             (or ALIBABA_CLOUD_CONFIG_FILE / ALIBABA_CLOUD_CREDENTIALS_FILE)"
        ),
    }))
}

fn ecs_settings(
    env: &dyn Fn(&str) -> Option<String>,
    endpoints: &Endpoints,
    role: Option<String>,
) -> EcsSettings {
    EcsSettings {
        role_name: role
            .or_else(|| env("ALIBABA_CLOUD_ECS_METADATA").filter(|r| !r.trim().is_empty())),
        metadata_endpoint: endpoints.metadata.clone(),
        hardened_only: env("ALIBABA_CLOUD_IMDSV1_DISABLED").is_some_and(|v| is_true(&v)),
    }
}

/// Builds the provider for a source.
pub fn build(
    source: &Source,
    clock: Arc<dyn Clock>,
    observer: Arc<dyn RefreshObserver>,
) -> Result<Arc<dyn CredentialsProvider>, CredentialsError> {
    Ok(match source {
        Source::Static { name, credentials } => {
            Arc::new(StaticProvider::new(name, credentials.clone()))
        }
        Source::Oidc(settings) => Arc::new(Refreshing::new(
            OidcFetcher::new(settings.clone())?,
            clock,
            observer,
        )),
        Source::Ecs { settings, .. } => Arc::new(Refreshing::new(
            EcsFetcher::new(settings.clone())?,
            clock,
            observer,
        )),
    })
}
