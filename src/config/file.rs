//! The YAML config file: accounts, each with its credentials, an optional
//! RAM role, regions, static instances and discovery. Unknown and duplicate
//! keys are errors, and every error names its line. The flags give the
//! defaults for what an account leaves out (`Defaults`).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::aliyun::SignatureVersion;
use crate::model::BackupApi;
use crate::products::Product;

use super::{
    check_endpoint, check_tags, instance_ids, is_valid_instance_id, rate_limit, regions,
    AccountConfig, AccountCredentials, DiscoveryConfig, ProductConfig, Regions, RoleConfig,
};

/// What the flags say for the keys an account leaves out.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Defaults {
    /// `--aliyun.region` (or `ALIBABA_CLOUD_REGION_ID`): the regions.
    pub region: Option<String>,
    /// `--aliyun.endpoint`.
    pub endpoint: Option<String>,
    /// `--aliyun.rate-limit`.
    pub rate_limit: f64,
    /// `--aliyun.signature-version`.
    pub signature_version: SignatureVersion,
    /// `--discovery.tag`: the tags of a discovery block without `tags`.
    pub tags: Vec<(String, String)>,
}

pub const DEFAULT_SESSION_NAME: &str = "aliyun-backup-exporter";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    accounts: Spanned<Vec<Spanned<RawAccount>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccount {
    name: Spanned<String>,
    credentials: Option<Spanned<RawCredentials>>,
    role_arn: Option<Spanned<String>>,
    role_session_name: Option<Spanned<String>>,
    rate_limit: Option<Spanned<String>>,
    endpoint: Option<Spanned<String>>,
    signature_version: Option<Spanned<String>>,
    redis: Option<Spanned<RawProduct>>,
    rds: Option<Spanned<RawProduct>>,
    mongodb: Option<Spanned<RawProduct>>,
    polardb: Option<Spanned<RawProduct>>,
}

impl RawAccount {
    /// Each product's section, by product (the key is its label).
    fn products(&self) -> [(Product, Option<&Spanned<RawProduct>>); 4] {
        [
            (Product::Redis, self.redis.as_ref()),
            (Product::Rds, self.rds.as_ref()),
            (Product::MongoDb, self.mongodb.as_ref()),
            (Product::PolarDb, self.polardb.as_ref()),
        ]
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCredentials {
    access_key_id_env: Option<Spanned<String>>,
    access_key_secret_env: Option<Spanned<String>>,
    security_token_env: Option<Spanned<String>>,
    profile: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProduct {
    regions: Option<Spanned<Vec<String>>>,
    instance_ids: Option<Spanned<Vec<String>>>,
    discovery: Option<Spanned<RawDiscovery>>,
    backup_api: Option<Spanned<BTreeMap<String, String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDiscovery {
    enabled: Option<bool>,
    tags: Option<Spanned<BTreeMap<String, String>>>,
}

/// `backup_api`: instance ID → the call that lists its backups.
fn backup_api_overrides(
    raw: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, BackupApi>, String> {
    raw.iter()
        .map(|(id, api)| {
            let id = id.trim();
            if !is_valid_instance_id(id) {
                return Err(format!(
                    "{id:?} is not an instance ID like r-bp1zxszhcgatnx"
                ));
            }
            let api = BackupApi::parse(api).ok_or_else(|| {
                format!("{id}: {api:?} is not describe_backups or cluster_backup_list")
            })?;
            Ok((id.to_string(), api))
        })
        .collect()
}

/// `line N column M: what` for a spanned value.
fn at<T>(spanned: &Spanned<T>, message: impl std::fmt::Display) -> String {
    format!(
        "line {} column {}: {message}",
        spanned.referenced.line(),
        spanned.referenced.column()
    )
}

/// Parses and checks the file's text; the error is one line, with the line
/// number, and never quotes more of the file than the offending value.
pub fn parse(text: &str, defaults: &Defaults) -> Result<Vec<AccountConfig>, String> {
    let blank = |l: &str| l.trim().is_empty() || l.trim_start().starts_with('#');
    if text.lines().all(blank) {
        return Err("the file is empty; it needs `accounts:`".into());
    }
    let raw: RawFile = serde_saphyr::from_str(text).map_err(|e| {
        // The first line says where and what; the rest is a snippet of the file.
        let text = e.to_string();
        let first = text.lines().next().unwrap_or("not valid YAML");
        first.trim_start_matches("error: ").replace(
            ", set DuplicateKeyPolicy in Options if acceptable",
            " (a key given twice)",
        )
    })?;
    if raw.accounts.value.is_empty() {
        return Err(at(
            &raw.accounts,
            "accounts: at least one account is needed",
        ));
    }
    let mut accounts: Vec<AccountConfig> = Vec::new();
    for entry in &raw.accounts.value {
        let account = account(&entry.value, defaults)?;
        if accounts.iter().any(|a| a.name == account.name) {
            return Err(at(
                &entry.value.name,
                format!("account name {:?} is used twice", account.name),
            ));
        }
        accounts.push(account);
    }
    Ok(accounts)
}

fn account(raw: &RawAccount, defaults: &Defaults) -> Result<AccountConfig, String> {
    let name = raw.name.value.trim().to_string();
    let name_ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !name_ok {
        return Err(at(
            &raw.name,
            format!("name {name:?}: 1 to 64 letters, digits, '.', '_' or '-'"),
        ));
    }
    let credentials = match &raw.credentials {
        None => AccountCredentials::Chain,
        Some(c) => credentials(c)?,
    };
    let role = match (&raw.role_arn, &raw.role_session_name) {
        (None, None) => None,
        (None, Some(session)) => {
            return Err(at(session, "role_session_name needs role_arn"));
        }
        (Some(arn), session) => {
            let value = arn.value.trim();
            let ok = value.starts_with("acs:ram::")
                && value.contains(":role/")
                && value.len() <= 256
                && !value.chars().any(char::is_whitespace);
            if !ok {
                return Err(at(
                    arn,
                    format!("role_arn {value:?} is not like acs:ram::<account-id>:role/<name>"),
                ));
            }
            let session_name = match session {
                None => DEFAULT_SESSION_NAME.to_string(),
                Some(s) => {
                    let v = s.value.trim();
                    let ok = (2..=64).contains(&v.len())
                        && v.bytes().all(|b| {
                            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'@' | b'_' | b'-')
                        });
                    if !ok {
                        return Err(at(
                            s,
                            format!("role_session_name {v:?}: 2 to 64 of A-Z a-z 0-9 . @ _ -"),
                        ));
                    }
                    v.to_string()
                }
            };
            Some(RoleConfig {
                arn: value.to_string(),
                session_name,
            })
        }
    };
    let rate_limit = match &raw.rate_limit {
        None => defaults.rate_limit,
        Some(r) => rate_limit(&r.value).map_err(|m| at(r, format!("rate_limit: {m}")))?,
    };
    let endpoint = match &raw.endpoint {
        None => defaults.endpoint.clone(),
        Some(e) => Some(check_endpoint(&e.value).map_err(|m| at(e, format!("endpoint: {m}")))?),
    };
    let signature_version = match &raw.signature_version {
        None => defaults.signature_version,
        Some(v) => v
            .value
            .parse()
            .map_err(|m| at(v, format!("signature_version: {m}")))?,
    };
    let mut products = BTreeMap::new();
    for (kind, section) in raw.products() {
        if let Some(section) = section {
            products.insert(kind, product(kind, section, defaults)?);
        }
    }
    if products.is_empty() {
        return Err(at(
            &raw.name,
            format!(
                "account {name:?} watches nothing: give redis.instance_ids or redis.discovery (or rds, mongodb, polardb)"
            ),
        ));
    }
    Ok(AccountConfig {
        name,
        credentials,
        role,
        rate_limit,
        endpoint,
        signature_version,
        products,
    })
}

fn credentials(raw: &Spanned<RawCredentials>) -> Result<AccountCredentials, String> {
    let c = &raw.value;
    let var = |v: &Spanned<String>, key: &str| {
        let name = v.value.trim();
        let ok = !name.is_empty()
            && name.len() <= 128
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if ok {
            Ok(name.to_string())
        } else {
            Err(at(
                v,
                format!("{key}: {name:?} is not an environment variable name"),
            ))
        }
    };
    let env_given = c.access_key_id_env.is_some()
        || c.access_key_secret_env.is_some()
        || c.security_token_env.is_some();
    match (&c.profile, env_given) {
        (Some(profile), true) => Err(at(
            profile,
            "credentials: give either profile or the *_env variables, not both",
        )),
        (Some(profile), false) => {
            let name = profile.value.trim();
            if name.is_empty() || name.len() > 128 {
                return Err(at(profile, "profile: a profile name is needed"));
            }
            Ok(AccountCredentials::Profile(name.to_string()))
        }
        (None, true) => {
            let (Some(id), Some(secret)) = (&c.access_key_id_env, &c.access_key_secret_env) else {
                return Err(at(
                    raw,
                    "credentials: access_key_id_env and access_key_secret_env go together",
                ));
            };
            Ok(AccountCredentials::Env {
                access_key_id: var(id, "access_key_id_env")?,
                access_key_secret: var(secret, "access_key_secret_env")?,
                security_token: c
                    .security_token_env
                    .as_ref()
                    .map(|t| var(t, "security_token_env"))
                    .transpose()?,
            })
        }
        (None, false) => Ok(AccountCredentials::Chain),
    }
}

fn product(
    kind: Product,
    raw: &Spanned<RawProduct>,
    defaults: &Defaults,
) -> Result<ProductConfig, String> {
    let p = &raw.value;
    let regions = match &p.regions {
        Some(list) => regions(&list.value)
            .map_err(|m| at(list, format!("regions: {m}")))?
            .ok_or_else(|| at(list, "regions: at least one region, or [all]"))?,
        None => match &defaults.region {
            Some(region) => Regions::List(vec![region.clone()]),
            None => {
                return Err(at(
                    raw,
                    format!("{kind}.regions is required (or --aliyun.region as the default)"),
                ))
            }
        },
    };
    let instance_ids = match &p.instance_ids {
        None => Vec::new(),
        Some(ids) => instance_ids(&ids.value).map_err(|m| at(ids, format!("instance_ids: {m}")))?,
    };
    let discovery = match &p.discovery {
        None => None,
        Some(d) if d.value.enabled == Some(false) => None,
        Some(d) => {
            let tags = match &d.value.tags {
                None => defaults.tags.clone(),
                Some(tags) => {
                    let pairs: Vec<(String, String)> = tags
                        .value
                        .iter()
                        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                        .collect();
                    check_tags(&pairs).map_err(|m| at(tags, format!("tags: {m}")))?;
                    pairs
                }
            };
            Some(DiscoveryConfig { tags })
        }
    };
    if instance_ids.is_empty() && discovery.is_none() {
        return Err(at(
            raw,
            format!("{kind} watches nothing: give instance_ids, or discovery (enabled: true)"),
        ));
    }
    let backup_api = match &p.backup_api {
        None => BTreeMap::new(),
        Some(map) if kind != Product::Redis => {
            return Err(at(
                map,
                format!("backup_api: only redis has two backup calls, {kind} has one"),
            ))
        }
        Some(map) => {
            backup_api_overrides(&map.value).map_err(|m| at(map, format!("backup_api: {m}")))?
        }
    };
    let static_region = match &regions {
        Regions::List(list) if list.len() == 1 => Some(list[0].clone()),
        _ => None,
    };
    Ok(ProductConfig {
        regions,
        static_region,
        instance_ids,
        discovery,
        backup_api,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    /// The fixtures: `tests/config/good/*.yml` must load; each of
    /// `tests/config/bad/*.yml` must fail with the error its first line
    /// names (`# error: …`), in one line.
    fn fixtures(kind: &str) -> Vec<PathBuf> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/config")
            .join(kind);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "yml"))
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no fixtures in {}", dir.display());
        files
    }

    fn defaults() -> Defaults {
        Defaults {
            rate_limit: 20.0,
            ..Default::default()
        }
    }

    #[test]
    fn each_product_has_its_section() {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/config/good/products.yml"),
        )
        .unwrap();
        let accounts = parse(&text, &defaults()).unwrap();
        let [prod, rds_only] = &accounts[..] else {
            panic!("{accounts:?}")
        };
        assert_eq!(
            prod.products.keys().copied().collect::<Vec<_>>(),
            Product::ALL
        );
        let rds = &prod.products[&Product::Rds];
        assert_eq!(rds.instance_ids, ["rm-uf6wjk5xxxxxxx"]);
        assert_eq!(rds.static_region, None, "two regions: looked up");
        assert_eq!(
            rds.discovery.as_ref().unwrap().tags,
            [("env".to_string(), "prod".to_string())]
        );
        assert_eq!(prod.products[&Product::MongoDb].regions, Regions::All);
        assert_eq!(
            prod.products[&Product::PolarDb].static_region.as_deref(),
            Some("cn-hangzhou")
        );
        assert_eq!(
            rds_only.products.keys().copied().collect::<Vec<_>>(),
            [Product::Rds]
        );
        assert!(rds_only.products[&Product::Rds].discovery.is_some());
    }

    #[test]
    fn good_files_load() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/config.yml");
        for path in fixtures("good").into_iter().chain([example]) {
            let text = std::fs::read_to_string(&path).unwrap();
            let accounts =
                parse(&text, &defaults()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(!accounts.is_empty(), "{}", path.display());
        }
    }

    #[test]
    fn bad_files_fail_with_the_line_and_the_reason() {
        for path in fixtures("bad") {
            let text = std::fs::read_to_string(&path).unwrap();
            let expected = text
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("# error: "))
                .unwrap_or_else(|| panic!("{}: first line must be `# error: …`", path.display()));
            let err = parse(&text, &defaults())
                .err()
                .unwrap_or_else(|| panic!("{} loaded", path.display()));
            assert!(
                err.contains(expected),
                "{}: {err:?} should contain {expected:?}",
                path.display()
            );
            assert!(!err.contains('\n'), "{}: {err:?}", path.display());
            assert!(
                !err.contains("pa55word") && !err.contains("t0ken"),
                "{}: {err}",
                path.display()
            );
        }
    }

    #[test]
    fn what_the_file_says_and_what_the_flags_default() {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/config/good/fleet.yml"),
        )
        .unwrap();
        let defaults = Defaults {
            region: Some("cn-hangzhou".into()),
            endpoint: Some("http://127.0.0.1:1".into()),
            rate_limit: 7.0,
            signature_version: SignatureVersion::V3,
            tags: vec![("env".into(), "flag".into())],
        };
        let accounts = parse(&text, &defaults).unwrap();
        let [prod, partner, sts] = &accounts[..] else {
            panic!("{accounts:?}")
        };
        assert_eq!(prod.rate_limit, 10.0);
        // Per account, else the flag's.
        assert_eq!(prod.signature_version, SignatureVersion::V2);
        assert_eq!(partner.signature_version, SignatureVersion::V3);
        assert_eq!(sts.signature_version, SignatureVersion::V3);
        assert_eq!(prod.endpoint.as_deref(), Some("http://127.0.0.1:1"));
        assert_eq!(prod.products[&Product::Redis].regions, Regions::All);
        assert_eq!(prod.products[&Product::Redis].static_region, None);
        assert_eq!(
            prod.products[&Product::Redis]
                .discovery
                .as_ref()
                .unwrap()
                .tags,
            vec![
                ("env".to_string(), "prod".to_string()),
                ("team".to_string(), "payments".to_string())
            ]
        );
        assert_eq!(
            prod.credentials,
            AccountCredentials::Env {
                access_key_id: "PROD_AK_ID".into(),
                access_key_secret: "PROD_AK_SECRET".into(),
                security_token: None
            }
        );
        assert_eq!(
            partner.credentials,
            AccountCredentials::Profile("partner".into())
        );
        let role = partner.role.as_ref().unwrap();
        assert_eq!(role.arn, "acs:ram::1234567890123456:role/backup-reader");
        assert_eq!(role.session_name, "backup-exporter");
        assert_eq!(
            partner.products[&Product::Redis]
                .backup_api
                .get("r-uf6static"),
            Some(&BackupApi::ClusterBackupList)
        );
        assert!(prod.products[&Product::Redis].backup_api.is_empty());
        assert_eq!(partner.rate_limit, 7.0);
        // An empty discovery block discovers, with the flags' tags.
        assert_eq!(
            partner.products[&Product::Redis]
                .discovery
                .as_ref()
                .unwrap()
                .tags,
            vec![("env".to_string(), "flag".to_string())]
        );
        assert_eq!(partner.products[&Product::Redis].static_region, None);
        assert_eq!(sts.rate_limit, 0.0);
        assert_eq!(
            sts.products[&Product::Redis].static_region.as_deref(),
            Some("eu-central-1")
        );
        assert!(matches!(
            &sts.credentials,
            AccountCredentials::Env { security_token: Some(t), .. } if t == "STS_TOKEN"
        ));
        // Regions default to --aliyun.region.
        let accounts = parse(
            "accounts:\n  - name: a\n    redis: {instance_ids: [r-1]}\n",
            &defaults,
        )
        .unwrap();
        assert_eq!(
            accounts[0].products[&Product::Redis].regions,
            Regions::List(vec!["cn-hangzhou".into()])
        );
        assert_eq!(accounts[0].role, None);
        assert_eq!(accounts[0].credentials, AccountCredentials::Chain);
    }
}
