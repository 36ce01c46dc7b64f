//! What the fake checks before any action, in the order the real API does:
//! common parameters, the version the action belongs to, the timestamp
//! window, the key, the signature, the security token and its expiry, and
//! nonce reuse.

use chrono::{DateTime, Utc};

use super::{error_from, host_of, FakeKey, Params, Shared};
use crate::aliyun::sign;
use crate::http::Response;

/// Clock skew the real API tolerates.
const MAX_SKEW_MINUTES: i64 = 15;

/// STS's API version.
pub(super) const STS_VERSION: &str = "2015-04-01";

/// The `Version` an action must come with: STS's for `AssumeRole`,
/// R-kvstore's for everything else (unknown actions included, which are
/// refused after authentication as the real API does).
fn version_for(action: &str) -> &'static str {
    if action == "AssumeRole" {
        STS_VERSION
    } else {
        crate::products::kvstore::API_VERSION
    }
}

/// Checks everything about a request but its action's own parameters;
/// `Ok` is the key that signed it, `Err` the error answer.
pub(super) fn check(
    shared: &Shared,
    method: &str,
    params: &Params,
    request_id: &str,
) -> Result<FakeKey, Box<Response>> {
    let action = params.get("Action").unwrap_or_default();
    let refuse = |status, code: &str, message: &str| {
        Box::new(error_from(
            host_of(action),
            status,
            code,
            message,
            request_id,
        ))
    };
    for required in [
        "Action",
        "Version",
        "AccessKeyId",
        "Signature",
        "SignatureMethod",
        "SignatureVersion",
        "SignatureNonce",
        "Timestamp",
    ] {
        if params.get(required).is_none() {
            let message = format!("{required} is mandatory for this action.");
            return Err(refuse(400, &format!("Missing{required}"), &message));
        }
    }
    if params.get("Version") != Some(version_for(action)) {
        return Err(refuse(
            400,
            "InvalidVersion",
            "Specified parameter Version is not valid.",
        ));
    }
    if params
        .get("Format")
        .is_some_and(|f| !f.eq_ignore_ascii_case("JSON"))
    {
        return Err(refuse(
            400,
            "InvalidParameter.Format",
            "This fake answers JSON only.",
        ));
    }
    if params.get("SignatureMethod") != Some("HMAC-SHA1") {
        return Err(refuse(
            400,
            "InvalidSignatureMethod",
            "Specified signature method is not valid.",
        ));
    }
    if params.get("SignatureVersion") != Some("1.0") {
        return Err(refuse(
            400,
            "InvalidSignatureVersion",
            "Specified signature version is not valid.",
        ));
    }
    let timestamp = params.get("Timestamp").unwrap_or_default();
    let Some(sent_at) = parse_timestamp(timestamp) else {
        return Err(refuse(
            400,
            "InvalidTimeStamp.Format",
            "Specified time stamp or date value is not well formatted.",
        ));
    };
    let now = shared.clock.now();
    if (now - sent_at).num_minutes().abs() > MAX_SKEW_MINUTES {
        return Err(refuse(
            400,
            "InvalidTimeStamp.Expired",
            "Specified time stamp or date value is expired.",
        ));
    }
    let mut state = shared.lock();
    let id = params.get("AccessKeyId").unwrap_or_default();
    let Some(accepted) = state.keys.iter().find(|k| k.key.id == id).cloned() else {
        return Err(refuse(
            404,
            "InvalidAccessKeyId.NotFound",
            "Specified access key is not found.",
        ));
    };
    let key = accepted.key;
    let unsigned: Vec<(&str, &str)> = params
        .0
        .iter()
        .filter(|(k, _)| k != "Signature")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let string_to_sign = sign::string_to_sign(method, &unsigned);
    let expected = sign::sign_string(&string_to_sign, &key.secret);
    if !sign::signatures_equal(&expected, params.get("Signature").unwrap_or_default()) {
        // The real API echoes its string-to-sign; so does the fake, so that
        // tests prove the client does not repeat it.
        let message = format!("Specified signature is not matched with our calculation. server string to sign is:{string_to_sign}");
        return Err(refuse(400, "SignatureDoesNotMatch", &message));
    }
    if let Some(token) = &key.security_token {
        if params.get("SecurityToken") != Some(token.as_str()) {
            return Err(refuse(
                400,
                "InvalidSecurityToken.Mismatch",
                "Specified SecurityToken is invalid.",
            ));
        }
    }
    if accepted.expires.is_some_and(|at| now >= at) {
        return Err(refuse(
            400,
            "InvalidSecurityToken.Expired",
            "Specified SecurityToken is expired.",
        ));
    }
    // Only a correctly signed nonce is remembered, like the real API.
    let nonce = params.get("SignatureNonce").unwrap_or_default().to_string();
    if state.seen_nonces.len() >= 10_000 {
        let horizon = now - chrono::Duration::minutes(2 * MAX_SKEW_MINUTES);
        state.seen_nonces.retain(|_, sent| *sent > horizon);
    }
    if state.seen_nonces.insert(nonce, sent_at).is_some() {
        return Err(refuse(
            400,
            "SignatureNonceUsed",
            "Specified signature nonce was used already.",
        ));
    }
    Ok(key)
}

/// `yyyy-MM-ddTHH:mm:ssZ`, the only form the API takes.
fn parse_timestamp(raw: &str) -> Option<DateTime<Utc>> {
    chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%SZ")
        .ok()
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_action_has_its_version() {
        assert_eq!(version_for("AssumeRole"), "2015-04-01");
        assert_eq!(version_for("DescribeBackups"), "2015-01-01");
        assert_eq!(version_for("DescribeInstances"), "2015-01-01");
        assert_eq!(version_for("NoSuchAction"), "2015-01-01");
    }

    #[test]
    fn timestamps_are_seconds_and_utc() {
        assert!(parse_timestamp("2026-01-01T00:00:00Z").is_some());
        assert!(parse_timestamp("2026-01-01T00:00Z").is_none());
        assert!(parse_timestamp("2026-01-01T00:00:00+08:00").is_none());
    }
}
