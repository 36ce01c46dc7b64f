//! What the fake checks before any action, in the order the real API does:
//! common parameters, the version the action belongs to, the timestamp
//! window, the key, the signature, the security token and its expiry, and
//! nonce reuse. `check` is signature V2 (parameters, from the query string
//! and the form body alike); `check_v3` is V3 (`ACS3-HMAC-SHA256`:
//! `x-acs-*` headers, `Authorization`, the body's hash), checked as strictly.

use chrono::{DateTime, Utc};
use hyper::HeaderMap;

use super::{error_from, host_of, FakeKey, Params, Shared, State};
use crate::aliyun::{sign, sign_v3};
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

/// Whether `version` may come with `action`: STS's with `AssumeRole` only;
/// any database product's (R-kvstore, RDS, MongoDB, PolarDB) with the
/// other actions, the version choosing the product as the host does for the
/// real API (an action the product lacks is refused after authentication).
fn version_accepted(action: &str, version: &str) -> bool {
    version == version_for(action)
        || (action != "AssumeRole" && super::FakeProduct::from_version(version).is_some())
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
    if !version_accepted(action, params.get("Version").unwrap_or_default()) {
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
    let nonce = params.get("SignatureNonce").unwrap_or_default();
    if !remember_nonce(&mut state, nonce, sent_at, now) {
        return Err(refuse(
            400,
            "SignatureNonceUsed",
            "Specified signature nonce was used already.",
        ));
    }
    Ok(key)
}

/// Remembers `nonce`; `false` if it was seen already. Nonces are forgotten
/// once their request's timestamp is out of the accepted window (a replay
/// would be refused for its timestamp anyway), so a long demo stays small.
fn remember_nonce(
    state: &mut State,
    nonce: &str,
    sent_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> bool {
    if state.seen_nonces.len() >= 10_000 {
        let horizon = now - chrono::Duration::minutes(2 * MAX_SKEW_MINUTES);
        state.seen_nonces.retain(|_, sent| *sent > horizon);
    }
    state
        .seen_nonces
        .insert(nonce.to_string(), sent_at)
        .is_none()
}

/// A V3 request as received.
pub(super) struct V3Request<'a> {
    pub method: &'a str,
    pub headers: &'a HeaderMap,
    /// The query string's parameters, decoded.
    pub query: &'a [(String, String)],
    pub body: &'a [u8],
}

impl V3Request<'_> {
    /// A header's value (every value of a repeated one is checked when
    /// signed; this is the first), `None` if absent or not text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The headers V3 needs, with the code the fake answers when one is absent.
const V3_REQUIRED: [(&str, &str); 6] = [
    ("host", "IncompleteSignature"),
    (sign_v3::ACTION, "MissingAction"),
    (sign_v3::VERSION, "MissingVersion"),
    (sign_v3::DATE, "MissingTimestamp"),
    (sign_v3::NONCE, "MissingSignatureNonce"),
    (sign_v3::CONTENT_SHA256, "IncompleteSignature"),
];

/// Whether the request's header `name` must be among the signed ones:
/// Alibaba signs every `x-acs-*` header, `host` and `content-type`.
fn must_be_signed(name: &str) -> bool {
    name == "host" || name == "content-type" || name.starts_with("x-acs-")
}

/// Checks a V3-signed request as `check` does a V2 one; `Ok` is the key
/// that signed it. The codes are those of V2 where the fault is the same
/// (`InvalidTimeStamp.Expired`, `SignatureNonceUsed`,
/// `InvalidAccessKeyId.NotFound`, `InvalidSecurityToken.*`); a signature
/// that does not cover what it must (a header left out of `SignedHeaders`,
/// or one named there that was not sent) or a body whose hash is not
/// `x-acs-content-sha256` is `SignatureDoesNotMatch`, like a wrong secret:
/// the request is not what was signed. An `Authorization` that is not
/// `ACS3-HMAC-SHA256 Credential=…,SignedHeaders=…,Signature=…` is
/// `IncompleteSignature`.
pub(super) fn check_v3(
    shared: &Shared,
    request: &V3Request<'_>,
    request_id: &str,
) -> Result<FakeKey, Box<Response>> {
    let action = request.header(sign_v3::ACTION).unwrap_or_default();
    let refuse = |status, code: &str, message: &str| {
        Box::new(error_from(
            host_of(action),
            status,
            code,
            message,
            request_id,
        ))
    };
    let Some(authorization) = request
        .header("authorization")
        .and_then(sign_v3::parse_authorization)
    else {
        return Err(refuse(
            400,
            "IncompleteSignature",
            "The request signature does not conform to Aliyun standards.",
        ));
    };
    for (name, code) in V3_REQUIRED {
        if request.header(name).is_none_or(str::is_empty) {
            let message = format!("The header {name} is mandatory for this action.");
            return Err(refuse(400, code, &message));
        }
    }
    let version = request.header(sign_v3::VERSION).unwrap_or_default();
    if !version_accepted(action, version) {
        return Err(refuse(
            400,
            "InvalidVersion",
            "Specified parameter Version is not valid.",
        ));
    }
    let date = request.header(sign_v3::DATE).unwrap_or_default();
    let Some(sent_at) = parse_timestamp(date) else {
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
    let Some(accepted) = state
        .keys
        .iter()
        .find(|k| k.key.id == authorization.access_key_id)
        .cloned()
    else {
        return Err(refuse(
            404,
            "InvalidAccessKeyId.NotFound",
            "Specified access key is not found.",
        ));
    };
    let key = accepted.key;
    let mismatch = |why: &str| {
        let message = format!("Specified signature is not matched with our calculation: {why}.");
        refuse(400, "SignatureDoesNotMatch", &message)
    };
    let signed: Vec<&str> = authorization.signed_headers.split(';').collect();
    for name in request.headers.keys() {
        if must_be_signed(name.as_str()) && !signed.contains(&name.as_str()) {
            return Err(mismatch(&format!("the header {name} is not signed")));
        }
    }
    let mut headers: Vec<(&str, &str)> = Vec::new();
    for name in &signed {
        let values = request.headers.get_all(*name);
        if values.iter().next().is_none() || *name != name.to_ascii_lowercase() {
            return Err(mismatch(&format!(
                "the signed header {name:?} is not in the request"
            )));
        }
        for value in values {
            let Ok(value) = value.to_str() else {
                return Err(mismatch(&format!("the header {name} is not text")));
            };
            headers.push((name, value));
        }
    }
    let hashed = request.header(sign_v3::CONTENT_SHA256).unwrap_or_default();
    let canonical = sign_v3::canonical_request(request.method, request.query, &headers, hashed);
    let string_to_sign = sign_v3::string_to_sign(&canonical);
    let expected = sign_v3::signature(&string_to_sign, &key.secret);
    if !sign::signatures_equal(&expected, authorization.signature) {
        // As for V2, the string-to-sign is echoed (a hash here).
        let message = format!("Specified signature is not matched with our calculation. server string to sign is:{string_to_sign}");
        return Err(refuse(400, "SignatureDoesNotMatch", &message));
    }
    if sign_v3::sha256_hex(request.body) != hashed {
        return Err(mismatch("x-acs-content-sha256 is not the hash of the body"));
    }
    if let Some(token) = &key.security_token {
        if request.header(sign_v3::SECURITY_TOKEN) != Some(token.as_str()) {
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
    let nonce = request.header(sign_v3::NONCE).unwrap_or_default();
    if !remember_nonce(&mut state, nonce, sent_at, now) {
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
    fn each_product_has_its_version() {
        for version in ["2015-01-01", "2014-08-15", "2015-12-01", "2017-08-01"] {
            assert!(version_accepted("DescribeBackups", version), "{version}");
            assert!(!version_accepted("AssumeRole", version), "{version}");
        }
        assert!(version_accepted("AssumeRole", STS_VERSION));
        assert!(!version_accepted("DescribeBackups", STS_VERSION));
        assert!(!version_accepted("DescribeBackups", "2019-01-01"));
    }

    #[test]
    fn what_v3_must_sign() {
        for name in ["host", "content-type", "x-acs-date", "x-acs-security-token"] {
            assert!(must_be_signed(name), "{name}");
        }
        for name in ["user-agent", "accept", "content-length", "authorization"] {
            assert!(!must_be_signed(name), "{name}");
        }
    }

    #[test]
    fn timestamps_are_seconds_and_utc() {
        assert!(parse_timestamp("2026-01-01T00:00:00Z").is_some());
        assert!(parse_timestamp("2026-01-01T00:00Z").is_none());
        assert!(parse_timestamp("2026-01-01T00:00:00+08:00").is_none());
    }
}
