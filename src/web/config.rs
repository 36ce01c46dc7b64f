//! The web configuration file (`--web.config.file`), the exporter-toolkit
//! format: parsed strictly (unknown and duplicate keys are errors), with the
//! toolkit's defaults, and checked. Pure but for nothing: the caller reads
//! the file; certificate files are read when the TLS config is built
//! (`tls`). Every error is one line that names the setting, and keeps the
//! toolkit's wording where users and tests match on it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tokio_rustls::rustls::crypto::ring::{cipher_suite as cs, kx_group};
use tokio_rustls::rustls::crypto::SupportedKxGroup;
use tokio_rustls::rustls::{SupportedCipherSuite, SupportedProtocolVersion};

use crate::secret::Secret;

use super::headers::{self, Headers};

/// The file as written. Every key is optional.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    tls_server_config: Option<RawTls>,
    #[serde(default)]
    http_server_config: Option<RawHttp>,
    #[serde(default)]
    basic_auth_users: Option<BTreeMap<String, String>>,
    #[serde(default)]
    rate_limit: Option<RawRateLimit>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: Option<String>,
    /// Inline private key: a secret, wrapped as soon as it is read.
    key: Option<String>,
    client_ca: Option<String>,
    cert_file: Option<String>,
    key_file: Option<String>,
    client_auth_type: Option<String>,
    client_ca_file: Option<String>,
    client_allowed_sans: Option<Vec<String>>,
    min_version: Option<String>,
    max_version: Option<String>,
    cipher_suites: Option<Vec<String>>,
    prefer_server_cipher_suites: Option<bool>,
    curve_preferences: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    http2: Option<bool>,
    headers: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    /// A Go duration (`1s`, `100ms`) or 0.
    interval: Option<String>,
    burst: Option<u32>,
}

/// The checked file.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// `None`: plain HTTP (basic auth and headers still apply).
    pub tls: Option<TlsSettings>,
    /// Accepted for compatibility; the exporter speaks HTTP/1.1 only.
    pub http2: bool,
    pub headers: Headers,
    /// User → bcrypt hash (every hash checked).
    pub users: BTreeMap<String, String>,
    /// Read once at start-up.
    pub rate_limit: Option<RateLimit>,
}

/// A token bucket: one token every `interval`, at most `burst` kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub interval: Duration,
    pub burst: u32,
}

/// Where a PEM comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pem {
    /// Relative paths are already resolved against the file's folder.
    File(PathBuf),
    /// Written in the config file (`cert`, `key`, `client_ca`); a key is
    /// a secret and never prints.
    Inline(Secret),
}

impl Pem {
    /// What an error says about it: the path, or which inline setting.
    pub fn describe(&self, inline_setting: &str) -> String {
        match self {
            Pem::File(path) => format!("{:?}", path.display().to_string()),
            Pem::Inline(_) => format!("(inline {inline_setting})"),
        }
    }
}

/// Go's `tls.ClientAuthType`, by the toolkit's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    NoClientCert,
    /// Ask for a certificate, accept any (or none).
    RequestClientCert,
    /// Require a certificate, accept any (its key must sign the handshake).
    RequireAnyClientCert,
    /// Verify a certificate against the client CA when one is sent.
    VerifyClientCertIfGiven,
    /// Require a certificate the client CA signed: the only secure choice.
    RequireAndVerifyClientCert,
}

#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub cert: Pem,
    pub key: Pem,
    pub client_ca: Option<Pem>,
    pub client_auth: ClientAuth,
    /// A client certificate must carry one of these as a DNS, IP, e-mail or
    /// URI SAN (exact match); empty: any.
    pub allowed_sans: Vec<String>,
    /// From min_version to max_version.
    pub versions: Vec<&'static SupportedProtocolVersion>,
    /// `None`: rustls's defaults. TLS 1.3 suites are always all on unless
    /// some are named (Go cannot configure them at all).
    pub cipher_suites: Option<Vec<SupportedCipherSuite>>,
    /// `prefer_server_cipher_suites` (rustls: `ignore_client_order`).
    pub prefer_server_order: bool,
    /// `None`: rustls's defaults (X25519, P-256, P-384).
    pub kx_groups: Option<Vec<&'static dyn SupportedKxGroup>>,
}

/// A bad web config: `setting: what`, one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WebConfigError(pub String);

fn err(setting: &str, message: impl std::fmt::Display) -> WebConfigError {
    WebConfigError(format!("{setting}: {message}"))
}

/// Parses and checks the file's `text`; relative certificate paths are
/// resolved against `dir`, the folder of the file.
pub fn parse(text: &str, dir: &Path) -> Result<WebConfig, WebConfigError> {
    let raw: RawFile = if text.trim().is_empty() {
        RawFile::default()
    } else {
        serde_saphyr::from_str(text).map_err(|e| {
            // The first line says where and what; the rest quotes the file
            // (which may hold an inline key): dropped.
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("not valid YAML");
            WebConfigError(format!(
                "yaml: {}",
                first.trim_start_matches("error: ").replace(
                    ", set DuplicateKeyPolicy in Options if acceptable",
                    " (a key given twice)",
                )
            ))
        })?
    };
    let http = raw.http_server_config.unwrap_or_default();
    let http2 = http.http2.unwrap_or(true);
    let headers = headers::parse(&http.headers.unwrap_or_default())
        .map_err(|m| err("http_server_config.headers", m))?;
    let users = raw.basic_auth_users.unwrap_or_default();
    for (user, hash) in &users {
        super::auth::check_hash(hash).map_err(|m| {
            err(
                "basic_auth_users",
                format!("user {user:?}: {m} (give a bcrypt hash, e.g. from `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)"),
            )
        })?;
    }
    let rate_limit = raw.rate_limit.map(rate_limit).transpose()?.flatten();
    let tls = raw
        .tls_server_config
        .map(|t| tls(t, dir, http2))
        .transpose()?
        .flatten();
    Ok(WebConfig {
        tls,
        http2,
        headers,
        users,
        rate_limit,
    })
}

fn rate_limit(raw: RawRateLimit) -> Result<Option<RateLimit>, WebConfigError> {
    let text = raw.interval.unwrap_or_default();
    let text = text.trim();
    let interval = if text.is_empty() || text == "0" {
        Duration::ZERO
    } else {
        humantime::parse_duration(text).map_err(|e| {
            err(
                "rate_limit.interval",
                format!("{text:?} is not a duration like 1s or 100ms ({e})"),
            )
        })?
    };
    if interval.is_zero() {
        // As the toolkit: no interval, no limit.
        return Ok(None);
    }
    Ok(Some(RateLimit {
        interval,
        burst: raw.burst.unwrap_or(0),
    }))
}

/// Go's `TLSConfig` checks; `None` when the section turns nothing on.
fn tls(raw: RawTls, dir: &Path, http2: bool) -> Result<Option<TlsSettings>, WebConfigError> {
    let set = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
    // As the toolkit's IsEnabled: any of these turns TLS on.
    let enabled = set(&raw.cert)
        || set(&raw.cert_file)
        || set(&raw.key)
        || set(&raw.key_file)
        || set(&raw.client_ca)
        || set(&raw.client_ca_file)
        || set(&raw.client_auth_type);
    if !enabled {
        let unused = raw
            .client_allowed_sans
            .as_ref()
            .is_some_and(|s| !s.is_empty())
            || raw.cipher_suites.as_ref().is_some_and(|s| !s.is_empty())
            || raw
                .curve_preferences
                .as_ref()
                .is_some_and(|s| !s.is_empty());
        if unused {
            return Err(err(
                "tls_server_config",
                "cipher_suites, curve_preferences or client_allowed_sans are set but TLS is off (no cert_file / key_file)",
            ));
        }
        return Ok(None);
    }
    let file = |v: Option<String>| {
        v.filter(|s| !s.is_empty()).map(|p| {
            let path = PathBuf::from(p);
            Pem::File(if path.is_relative() {
                dir.join(path)
            } else {
                path
            })
        })
    };
    let inline = |v: Option<String>| {
        v.filter(|s| !s.is_empty())
            .map(|p| Pem::Inline(Secret::new(p)))
    };
    let one_of = |name: &str, inline: Option<Pem>, file: Option<Pem>| match (inline, file) {
        (Some(_), Some(_)) => Err(err(
            "tls_server_config",
            format!("at most one of {name} or {name}_file must be configured"),
        )),
        (a, b) => Ok(a.or(b)),
    };
    let cert = one_of("cert", inline(raw.cert), file(raw.cert_file))?
        .ok_or_else(|| err("tls_server_config", "missing one of cert or cert_file"))?;
    let key = one_of("key", inline(raw.key), file(raw.key_file))?
        .ok_or_else(|| err("tls_server_config", "missing one of key or key_file"))?;
    let client_ca = one_of("client_ca", inline(raw.client_ca), file(raw.client_ca_file))?;

    let client_auth = match raw.client_auth_type.as_deref().unwrap_or("") {
        "" | "NoClientCert" => ClientAuth::NoClientCert,
        "RequestClientCert" => ClientAuth::RequestClientCert,
        // The second name is kept by the toolkit for old files.
        "RequireAnyClientCert" | "RequireClientCert" => ClientAuth::RequireAnyClientCert,
        "VerifyClientCertIfGiven" => ClientAuth::VerifyClientCertIfGiven,
        "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerifyClientCert,
        other => {
            return Err(err(
                "tls_server_config.client_auth_type",
                format!("invalid ClientAuth: {other} (one of NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert)"),
            ))
        }
    };
    if client_ca.is_some() && client_auth == ClientAuth::NoClientCert {
        return Err(err(
            "tls_server_config.client_ca_file",
            "client CA's have been configured without a Client Auth Policy (set client_auth_type)",
        ));
    }
    let verifies = matches!(
        client_auth,
        ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert
    );
    if verifies && client_ca.is_none() {
        // Go would verify against an empty pool and refuse every
        // certificate; say so now.
        return Err(err(
            "tls_server_config.client_ca_file",
            format!("client_auth_type {client_auth:?} needs client_ca_file (or client_ca) to verify client certificates against"),
        ));
    }
    let allowed_sans = raw.client_allowed_sans.unwrap_or_default();
    if !allowed_sans.is_empty() && client_auth == ClientAuth::NoClientCert {
        return Err(err(
            "tls_server_config.client_allowed_sans",
            "is set but client_auth_type asks for no client certificate",
        ));
    }

    let min = version(
        "tls_server_config.min_version",
        raw.min_version.as_deref(),
        Version::Tls12,
    )?;
    let max = version(
        "tls_server_config.max_version",
        raw.max_version.as_deref(),
        Version::Tls13,
    )?;
    if min > max {
        return Err(err(
            "tls_server_config.min_version",
            format!("{min:?} is above max_version {max:?}"),
        ));
    }
    let mut versions = Vec::new();
    if min == Version::Tls12 {
        versions.push(&tokio_rustls::rustls::version::TLS12);
    }
    if max == Version::Tls13 {
        versions.push(&tokio_rustls::rustls::version::TLS13);
    }

    let names = raw.cipher_suites.unwrap_or_default();
    let cipher_suites = if names.is_empty() {
        None
    } else {
        let mut suites = names
            .iter()
            .map(|n| cipher(n).map_err(|m| err("tls_server_config.cipher_suites", m)))
            .collect::<Result<Vec<_>, _>>()?;
        if http2 && min < Version::Tls13 {
            // Go's HTTP/2 server refuses such a list; kept so that a file
            // valid here is valid for every Prometheus exporter.
            let required = [
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            ];
            if !names.iter().any(|n| required.contains(&n.as_str())) {
                return Err(err(
                    "tls_server_config.cipher_suites",
                    "http2: TLSConfig.CipherSuites is missing an HTTP/2-required AES_128_GCM_SHA256 cipher (need at least one of TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 or TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256; or set http_server_config.http2: false)",
                ));
            }
        }
        let tls13 = |s: &SupportedCipherSuite| matches!(s, SupportedCipherSuite::Tls13(_));
        if !suites.iter().any(tls13) {
            // Go cannot restrict TLS 1.3 suites: all stay on.
            suites.extend([
                cs::TLS13_AES_128_GCM_SHA256,
                cs::TLS13_AES_256_GCM_SHA384,
                cs::TLS13_CHACHA20_POLY1305_SHA256,
            ]);
        }
        if min == Version::Tls12 && max == Version::Tls12 && suites.iter().all(tls13) {
            return Err(err(
                "tls_server_config.cipher_suites",
                "names only TLS 1.3 suites but max_version is TLS12",
            ));
        }
        Some(suites)
    };

    let curve_names = raw.curve_preferences.unwrap_or_default();
    let kx_groups = if curve_names.is_empty() {
        None
    } else {
        Some(
            curve_names
                .iter()
                .map(|n| curve(n).map_err(|m| err("tls_server_config.curve_preferences", m)))
                .collect::<Result<Vec<_>, _>>()?,
        )
    };

    Ok(Some(TlsSettings {
        cert,
        key,
        client_ca,
        client_auth,
        allowed_sans,
        versions,
        cipher_suites,
        prefer_server_order: raw.prefer_server_cipher_suites.unwrap_or(true),
        kx_groups,
    }))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Version {
    Tls12,
    Tls13,
}

fn version(setting: &str, raw: Option<&str>, default: Version) -> Result<Version, WebConfigError> {
    match raw.unwrap_or("") {
        "" => Ok(default),
        "TLS12" => Ok(Version::Tls12),
        "TLS13" => Ok(Version::Tls13),
        old @ ("TLS10" | "TLS11") => Err(err(
            setting,
            format!(
                "{old} is not supported: rustls speaks TLS 1.2 and 1.3 only (use TLS12 or TLS13)"
            ),
        )),
        other => Err(err(setting, format!("unknown TLS version: {other}"))),
    }
}

/// A Go cipher suite name (`tls.CipherSuites()`) → the rustls suite.
fn cipher(name: &str) -> Result<SupportedCipherSuite, String> {
    Ok(match name {
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" | "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305" => {
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" | "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305" => {
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        }
        // Go's names of the TLS 1.3 suites (rustls calls them TLS13_*).
        "TLS_AES_128_GCM_SHA256" => cs::TLS13_AES_128_GCM_SHA256,
        "TLS_AES_256_GCM_SHA384" => cs::TLS13_AES_256_GCM_SHA384,
        "TLS_CHACHA20_POLY1305_SHA256" => cs::TLS13_CHACHA20_POLY1305_SHA256,
        // Go knows these; rustls has no CBC and no RSA key exchange.
        "TLS_RSA_WITH_AES_128_CBC_SHA"
        | "TLS_RSA_WITH_AES_256_CBC_SHA"
        | "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"
        | "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA"
        | "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"
        | "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA" => {
            return Err(format!(
                "cipher {name} is not supported: rustls has no CBC suites (use the _GCM_ or _CHACHA20_ ones)"
            ))
        }
        "TLS_RSA_WITH_AES_128_GCM_SHA256" | "TLS_RSA_WITH_AES_256_GCM_SHA384" => {
            return Err(format!(
                "cipher {name} is not supported: rustls has no RSA key exchange (use TLS_ECDHE_RSA_WITH_*)"
            ))
        }
        other => return Err(format!("unknown cipher: {other}")),
    })
}

/// A Go curve name → the rustls key exchange group.
fn curve(name: &str) -> Result<&'static dyn SupportedKxGroup, String> {
    Ok(match name {
        "CurveP256" => kx_group::SECP256R1,
        "CurveP384" => kx_group::SECP384R1,
        "X25519" => kx_group::X25519,
        "CurveP521" => {
            return Err("curve CurveP521 is not supported: rustls has no P-521 (use CurveP256, CurveP384 or X25519)".into())
        }
        other => return Err(format!("unknown curve: {other}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> WebConfig {
        parse(text, Path::new("/etc/exporter")).expect("valid")
    }

    fn parse_err(text: &str) -> String {
        parse(text, Path::new("/etc/exporter"))
            .expect_err("invalid")
            .to_string()
    }

    #[test]
    fn empty_file_is_plain_http_without_auth() {
        let config = parse_ok("");
        assert!(config.tls.is_none() && config.users.is_empty() && config.http2);
        assert!(config.rate_limit.is_none());
    }

    #[test]
    fn relative_paths_are_resolved_against_the_folder_of_the_file() {
        let config = parse_ok("tls_server_config:\n  cert_file: a.crt\n  key_file: /abs/a.key\n");
        let tls = config.tls.expect("tls on");
        assert_eq!(tls.cert, Pem::File("/etc/exporter/a.crt".into()));
        assert_eq!(tls.key, Pem::File("/abs/a.key".into()));
        assert_eq!(tls.versions.len(), 2);
        assert!(tls.prefer_server_order);
    }

    #[test]
    fn the_inline_key_never_shows_in_debug_output() {
        let config = parse_ok("tls_server_config:\n  cert: CERT\n  key: TOPSECRETKEY\n");
        assert!(!format!("{config:?}").contains("TOPSECRETKEY"));
    }

    #[test]
    fn unknown_and_duplicate_keys_are_refused() {
        assert!(parse_err("tls_server_config:\n  cert_filse: a\n").contains("cert_filse"));
        let dup = parse_err("basic_auth_users:\n  alice: $2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi\n  alice: $2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi\n");
        assert!(dup.contains("alice"), "{dup}");
    }

    #[test]
    fn rate_limit_zero_disables_it() {
        assert!(parse_ok("rate_limit:\n  interval: 0\n  burst: 3\n")
            .rate_limit
            .is_none());
        let limit = parse_ok("rate_limit:\n  interval: 1s\n  burst: 2\n").rate_limit;
        assert_eq!(
            limit,
            Some(RateLimit {
                interval: Duration::from_secs(1),
                burst: 2
            })
        );
    }

    proptest::proptest! {
        /// Any text gives a config or a one-line error; never a panic.
        #[test]
        fn arbitrary_text_never_panics(text in "(tls_server_config|basic_auth_users|rate_limit|http_server_config|headers|cert_file|:| |\n|-|[a-z0-9$./]){0,80}") {
            if let Err(e) = parse(&text, Path::new("/x")) {
                proptest::prop_assert!(!e.to_string().contains('\n'));
            }
        }
    }
}
