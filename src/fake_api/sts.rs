//! STS `AssumeRole` on the same server: a trusted key gets temporary
//! credentials of the role's account, which the other actions then accept
//! (with their security token) until they expire.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::scenario::time;
use super::{error_from, ok_json, outcome, AcceptedKey, FakeKey, Params, Shared};
use crate::http::Response;

const HOST: &str = "sts.aliyuncs.com";

/// `DurationSeconds`: default and bounds (the bound above is the largest a
/// role's maximum session can be).
const DEFAULT_DURATION_SECONDS: i64 = 3600;
const MIN_DURATION_SECONDS: i64 = 900;
const MAX_DURATION_SECONDS: i64 = 43_200;

/// Minted keys this long past their expiry are forgotten (they would only
/// get `InvalidSecurityToken.Expired` anyway), so a long demo stays small.
const FORGET_AFTER: chrono::Duration = chrono::Duration::days(1);

/// 2–64 characters of `[A-Za-z0-9.@_-]`.
fn valid_session_name(name: &str) -> bool {
    (2..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'@' | b'_' | b'-'))
}

/// `acs:ram::<account-id>:role/<name>` → (account id, role name).
fn split_arn(arn: &str) -> Option<(&str, &str)> {
    let rest = arn.strip_prefix("acs:ram::")?;
    let (account, name) = rest.split_once(":role/")?;
    (!account.is_empty() && !name.is_empty()).then_some((account, name))
}

/// A value that looks random enough for a fake secret.
fn random_hex(len: usize) -> String {
    (0..len)
        .map(|_| char::from(b"0123456789abcdef"[fastrand::usize(..16)]))
        .collect()
}

pub(super) fn assume_role(
    shared: &Shared,
    caller: &FakeKey,
    params: &Params,
    request_id: &str,
) -> Response {
    let fail = |status, code: &str, message: &str| {
        outcome(error_from(HOST, status, code, message, request_id), code)
    };
    let Some(role_arn) = params.get("RoleArn").filter(|v| !v.is_empty()) else {
        return fail(
            400,
            "MissingRoleArn",
            "RoleArn is mandatory for this action.",
        );
    };
    let Some(session) = params.get("RoleSessionName").filter(|v| !v.is_empty()) else {
        return fail(
            400,
            "MissingRoleSessionName",
            "RoleSessionName is mandatory for this action.",
        );
    };
    if !valid_session_name(session) {
        return fail(
            400,
            "InvalidParameter.RoleSessionName",
            "The parameter RoleSessionName is wrongly formed.",
        );
    }
    let duration = match params.get("DurationSeconds").map(str::parse::<i64>) {
        None => DEFAULT_DURATION_SECONDS,
        Some(Ok(s)) if (MIN_DURATION_SECONDS..=MAX_DURATION_SECONDS).contains(&s) => s,
        Some(_) => {
            return fail(
                400,
                "InvalidParameter.DurationSeconds",
                "The Min/Max value of DurationSeconds is 15min/12hr.",
            )
        }
    };
    let now = shared.clock.now();
    let mut state = shared.lock();
    let Some(role) = state.roles.get(role_arn).cloned() else {
        drop(state);
        return fail(404, "EntityNotExist.Role", "The role not exists.");
    };
    if !role.trusted_key_ids.contains(&caller.id) {
        drop(state);
        return fail(
            403,
            "NoPermission",
            "You are not authorized to do this action. You should be authorized by RAM.",
        );
    }
    let lifetime = role
        .lifetime
        .and_then(|l| chrono::Duration::from_std(l).ok())
        .unwrap_or(chrono::Duration::seconds(duration));
    // Whole seconds: the answer has no more, and the key must expire exactly
    // when the answer says.
    let expiration =
        DateTime::<Utc>::from_timestamp((now + lifetime).timestamp(), 0).unwrap_or(now + lifetime);

    let id = loop {
        state.minted += 1;
        let id = format!("STS.{}", state.minted);
        if !state.keys.iter().any(|k| k.key.id == id) {
            break id;
        }
    };
    let serial = state.minted;
    let key = FakeKey {
        id: id.clone(),
        secret: format!("fake-sts-secret-{}", random_hex(24)),
        security_token: Some(format!("CAIS-fake-sts-token-{serial}-{}", random_hex(32))),
        account: role.account.clone(),
    };
    state
        .keys
        .retain(|k| k.expires.is_none_or(|at| at + FORGET_AFTER > now));
    state.keys.push(AcceptedKey {
        key: key.clone(),
        expires: Some(expiration),
    });
    drop(state);

    let (account_id, role_name) = split_arn(role_arn).unwrap_or(("0", role_arn));
    let body = json!({
        "RequestId": request_id,
        "AssumedRoleUser": {
            "Arn": format!("acs:ram::{account_id}:assumed-role/{role_name}/{session}"),
            "AssumedRoleId": format!("3{serial:017}:{session}"),
        },
        "Credentials": {
            "AccessKeyId": key.id,
            "AccessKeySecret": key.secret,
            "SecurityToken": key.security_token,
            "Expiration": time(expiration),
        },
    });
    ok_json(&body, request_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_names() {
        assert!(valid_session_name("aliyun-backup-exporter"));
        assert!(valid_session_name("a.b@c_d-e"));
        assert!(!valid_session_name("a"));
        assert!(!valid_session_name(&"a".repeat(65)));
        assert!(valid_session_name(&"a".repeat(64)));
        assert!(!valid_session_name("has space"));
        assert!(!valid_session_name("slash/no"));
    }

    #[test]
    fn role_arns() {
        assert_eq!(
            split_arn("acs:ram::1234567890123456:role/backup-reader"),
            Some(("1234567890123456", "backup-reader"))
        );
        assert_eq!(split_arn("arn:aws:iam::1:role/x"), None);
        assert_eq!(split_arn("acs:ram:::role/x"), None);
    }
}
