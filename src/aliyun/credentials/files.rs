//! Credentials from files: the Alibaba Cloud CLI's `~/.aliyun/config.json`
//! and the credentials INI file `~/.alibabacloud/credentials`.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use super::{Credentials, CredentialsError};
use crate::secret::Secret;

/// What a profile says to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Profile {
    Static(Credentials),
    EcsRamRole(String),
}

/// The CLI's `config.json`: profile `wanted`, or its `current` one.
pub fn cli_profile(path: &Path, wanted: Option<&str>) -> Result<Profile, CredentialsError> {
    const SOURCE: &str = "cli-profile";
    let fail = |message: String| CredentialsError {
        source_name: SOURCE,
        message,
    };
    #[derive(Deserialize)]
    struct Config {
        current: Option<String>,
        #[serde(default)]
        profiles: Vec<CliProfile>,
    }
    #[derive(Deserialize)]
    struct CliProfile {
        name: String,
        mode: Option<String>,
        access_key_id: Option<String>,
        access_key_secret: Option<String>,
        sts_token: Option<String>,
        ram_role_name: Option<String>,
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
    // Only where it broke: serde's message can quote the values around it.
    let config: Config = serde_json::from_str(&text).map_err(|e| {
        fail(format!(
            "{} is not a CLI config (line {}, column {})",
            path.display(),
            e.line(),
            e.column()
        ))
    })?;
    let name = wanted
        .map(str::to_string)
        .or(config.current)
        .unwrap_or_else(|| "default".into());
    let profile = config
        .profiles
        .into_iter()
        .find(|p| p.name == name)
        .ok_or_else(|| fail(format!("{} has no profile {name:?}", path.display())))?;
    let need = |v: Option<String>, field: &str| {
        v.filter(|s| !s.trim().is_empty()).ok_or_else(|| {
            fail(format!(
                "profile {name:?} in {} has no {field}",
                path.display()
            ))
        })
    };
    match profile.mode.as_deref().unwrap_or("AK") {
        "AK" => Ok(Profile::Static(Credentials {
            access_key_id: need(profile.access_key_id, "access_key_id")?,
            access_key_secret: Secret::new(need(profile.access_key_secret, "access_key_secret")?),
            security_token: None,
        })),
        "StsToken" => Ok(Profile::Static(Credentials {
            access_key_id: need(profile.access_key_id, "access_key_id")?,
            access_key_secret: Secret::new(need(profile.access_key_secret, "access_key_secret")?),
            security_token: Some(Secret::new(need(profile.sts_token, "sts_token")?)),
        })),
        "EcsRamRole" => Ok(Profile::EcsRamRole(need(
            profile.ram_role_name,
            "ram_role_name",
        )?)),
        other => Err(fail(format!(
            "profile {name:?} has mode {other:?}; supported: AK, StsToken, EcsRamRole"
        ))),
    }
}

/// The INI credentials file: section `wanted` (or `default`).
pub fn ini_profile(path: &Path, wanted: Option<&str>) -> Result<Profile, CredentialsError> {
    const SOURCE: &str = "credentials-file";
    let fail = |message: String| CredentialsError {
        source_name: SOURCE,
        message,
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
    let name = wanted.unwrap_or("default");
    let sections = parse_ini(&text);
    let section = sections
        .get(name)
        .ok_or_else(|| fail(format!("{} has no section [{name}]", path.display())))?;
    let need = |key: &str| {
        section
            .get(key)
            .filter(|v| !v.is_empty())
            .cloned()
            .ok_or_else(|| {
                fail(format!(
                    "section [{name}] of {} has no {key}",
                    path.display()
                ))
            })
    };
    match section
        .get("type")
        .map(String::as_str)
        .unwrap_or("access_key")
    {
        "access_key" => Ok(Profile::Static(Credentials {
            access_key_id: need("access_key_id")?,
            access_key_secret: Secret::new(need("access_key_secret")?),
            security_token: None,
        })),
        "ecs_ram_role" => Ok(Profile::EcsRamRole(need("role_name")?)),
        other => Err(fail(format!(
            "section [{name}] has type {other:?}; supported: access_key, ecs_ram_role"
        ))),
    }
}

/// `[section]` and `key = value` lines; `#` and `;` start comments.
fn parse_ini(text: &str) -> HashMap<String, HashMap<String, String>> {
    let mut sections: HashMap<String, HashMap<String, String>> = HashMap::new();
    let mut current = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.trim().to_string();
            sections.entry(current.clone()).or_default();
        } else if let Some((key, value)) = line.split_once('=') {
            let value = value.trim().trim_matches('"');
            sections
                .entry(current.clone())
                .or_default()
                .insert(key.trim().to_string(), value.to_string());
        }
    }
    sections
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file in a directory of its own, removed when dropped.
    struct TestFile(std::path::PathBuf, #[allow(dead_code)] tempfile::TempDir);

    impl std::ops::Deref for TestFile {
        type Target = std::path::Path;
        fn deref(&self) -> &std::path::Path {
            &self.0
        }
    }

    fn write(name: &str, text: &str) -> TestFile {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        TestFile(path, dir)
    }

    #[test]
    fn ini_access_key_and_role_profiles() {
        let path = write(
            "credentials",
            "# comment\n[default]\ntype = access_key\naccess_key_id = id1\naccess_key_secret = s1\n\n[prod]\ntype = ecs_ram_role\nrole_name = backup-reader\n[odd]\ntype = rsa_key_pair\n",
        );
        let Profile::Static(c) = ini_profile(&path, None).unwrap() else {
            panic!()
        };
        assert_eq!(
            (c.access_key_id.as_str(), c.access_key_secret.expose()),
            ("id1", "s1")
        );
        assert_eq!(
            ini_profile(&path, Some("prod")).unwrap(),
            Profile::EcsRamRole("backup-reader".into())
        );
        let err = ini_profile(&path, Some("odd")).unwrap_err().to_string();
        assert!(
            err.contains("rsa_key_pair") && err.starts_with("credentials-file"),
            "{err}"
        );
        assert!(ini_profile(&path, Some("missing"))
            .unwrap_err()
            .to_string()
            .contains("[missing]"));
    }

    #[test]
    fn cli_ak_and_sts_profiles() {
        let path = write(
            "config.json",
            r#"{"current":"sts","profiles":[
              {"name":"default","mode":"AK","access_key_id":"id1","access_key_secret":"s1"},
              {"name":"sts","mode":"StsToken","access_key_id":"STS.id","access_key_secret":"s2","sts_token":"tok"},
              {"name":"broken","mode":"AK","access_key_id":"id3"},
              {"name":"role","mode":"EcsRamRole","ram_role_name":"r"}]}"#,
        );
        let Profile::Static(c) = cli_profile(&path, None).unwrap() else {
            panic!()
        };
        assert_eq!(c.security_token.as_ref().map(|t| t.expose()), Some("tok"));
        let Profile::Static(c) = cli_profile(&path, Some("default")).unwrap() else {
            panic!()
        };
        assert_eq!(c.access_key_id, "id1");
        let err = cli_profile(&path, Some("broken")).unwrap_err().to_string();
        assert!(err.contains("access_key_secret"), "{err}");
        assert_eq!(
            cli_profile(&path, Some("role")).unwrap(),
            Profile::EcsRamRole("r".into())
        );
        let bad = write("bad.json", "{not json");
        assert!(cli_profile(&bad, None)
            .unwrap_err()
            .to_string()
            .contains("not a CLI config"));
    }
}
