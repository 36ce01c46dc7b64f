//! Request signing, "signature V3" (`ACS3-HMAC-SHA256`), as pure functions:
//! the exporter's client signs with them and the fake API checks with them.
//!
//! Alibaba's algorithm:
//!
//! ```text
//! CanonicalRequest = METHOD \n CanonicalURI \n CanonicalQuery \n
//!                    CanonicalHeaders \n SignedHeaders \n HashedPayload
//! StringToSign     = "ACS3-HMAC-SHA256" \n hex(SHA-256(CanonicalRequest))
//! Signature        = hex(HMAC-SHA256(key = secret, StringToSign))
//! Authorization    = ACS3-HMAC-SHA256 Credential=<id>,SignedHeaders=<names>,Signature=<hex>
//! ```
//!
//! The query is encoded and sorted as for V2 (`sign::canonical_query`);
//! each canonical header is `name:value\n` with the name in lower case and
//! the value trimmed, sorted by name; `HashedPayload` is the lower-case hex
//! SHA-256 of the body, also sent as `x-acs-content-sha256`.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::sign;

/// The algorithm's name, first word of `Authorization` and of the string to sign.
pub const ALGORITHM: &str = "ACS3-HMAC-SHA256";

/// Headers that carry the request's identity, signed whenever present.
pub const ACTION: &str = "x-acs-action";
pub const VERSION: &str = "x-acs-version";
pub const DATE: &str = "x-acs-date";
pub const NONCE: &str = "x-acs-signature-nonce";
pub const CONTENT_SHA256: &str = "x-acs-content-sha256";
pub const SECURITY_TOKEN: &str = "x-acs-security-token";

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// `x-acs-content-sha256` of a body: lower-case hex SHA-256.
pub fn sha256_hex(body: &[u8]) -> String {
    hex(&Sha256::digest(body))
}

/// The canonical headers and the signed header names of `headers` (any
/// case, any order; a name given twice has its values sorted and joined
/// with `,`, as the SDKs do).
pub fn canonical_headers<N: AsRef<str>, V: AsRef<str>>(headers: &[(N, V)]) -> (String, String) {
    let mut lines: Vec<(String, Vec<String>)> = Vec::new();
    for (name, value) in headers {
        let name = name.as_ref().trim().to_ascii_lowercase();
        let value = value.as_ref().trim().to_string();
        match lines.iter_mut().find(|(n, _)| *n == name) {
            Some((_, values)) => values.push(value),
            None => lines.push((name, vec![value])),
        }
    }
    lines.sort();
    let mut canonical = String::new();
    let mut names = Vec::with_capacity(lines.len());
    for (name, mut values) in lines {
        values.sort();
        canonical.push_str(&name);
        canonical.push(':');
        canonical.push_str(&values.join(","));
        canonical.push('\n');
        names.push(name);
    }
    (canonical, names.join(";"))
}

/// The canonical request; `headers` are exactly the signed ones.
pub fn canonical_request<K, V, N, W>(
    method: &str,
    query: &[(K, V)],
    headers: &[(N, W)],
    hashed_payload: &str,
) -> String
where
    K: AsRef<str>,
    V: AsRef<str>,
    N: AsRef<str>,
    W: AsRef<str>,
{
    let (canonical, signed) = canonical_headers(headers);
    format!(
        "{method}\n/\n{}\n{canonical}\n{signed}\n{hashed_payload}",
        sign::canonical_query(query)
    )
}

/// `ACS3-HMAC-SHA256\n` + hex SHA-256 of the canonical request.
pub fn string_to_sign(canonical_request: &str) -> String {
    format!("{ALGORITHM}\n{}", sha256_hex(canonical_request.as_bytes()))
}

/// Lower-case hex HMAC-SHA256 of `string_to_sign`, keyed with the bare secret.
pub fn signature(string_to_sign: &str, secret: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac =
        <Hmac<Sha256>>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(string_to_sign.as_bytes());
    hex(&mac.finalize().into_bytes())
}

/// The `Authorization` header's value.
pub fn authorization(access_key_id: &str, signed_headers: &str, signature: &str) -> String {
    format!("{ALGORITHM} Credential={access_key_id},SignedHeaders={signed_headers},Signature={signature}")
}

/// A parsed `Authorization` header.
#[derive(PartialEq, Eq)]
pub struct Authorization<'a> {
    pub access_key_id: &'a str,
    /// As sent: `;`-joined lower-case names.
    pub signed_headers: &'a str,
    pub signature: &'a str,
}

impl std::fmt::Debug for Authorization<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The signature stays out of logs and panics.
        f.debug_struct("Authorization")
            .field("access_key_id", &self.access_key_id)
            .field("signed_headers", &self.signed_headers)
            .finish_non_exhaustive()
    }
}

/// Reads `ACS3-HMAC-SHA256 Credential=…,SignedHeaders=…,Signature=…`
/// (the three parts in any order, each once); `None` if it is not that.
pub fn parse_authorization(value: &str) -> Option<Authorization<'_>> {
    let rest = value.trim().strip_prefix(ALGORITHM)?;
    if !rest.starts_with(' ') {
        return None;
    }
    let (mut id, mut signed, mut signature) = (None, None, None);
    for part in rest.trim().split(',') {
        let (name, value) = part.trim().split_once('=')?;
        let slot = match name {
            "Credential" => &mut id,
            "SignedHeaders" => &mut signed,
            "Signature" => &mut signature,
            _ => return None,
        };
        if slot.replace(value).is_some() {
            return None;
        }
    }
    Some(Authorization {
        access_key_id: id.filter(|v| !v.is_empty())?,
        signed_headers: signed.filter(|v| !v.is_empty())?,
        signature: signature.filter(|v| !v.is_empty())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published example ("V3 request structure and signature", fixed
    /// parameter values), as the reference sheet gives it.
    const HEADERS: [(&str, &str); 6] = [
        ("host", "ecs.cn-shanghai.aliyuncs.com"),
        ("x-acs-action", "RunInstances"),
        ("x-acs-version", "2014-05-26"),
        ("x-acs-date", "2023-10-26T10:22:32Z"),
        ("x-acs-signature-nonce", "3156853299f313e23d1673dc12e1703d"),
        (
            "x-acs-content-sha256",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ),
    ];
    const QUERY: [(&str, &str); 2] = [
        (
            "ImageId",
            "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd",
        ),
        ("RegionId", "cn-shanghai"),
    ];

    #[test]
    fn published_vector_byte_for_byte() {
        let empty_hash = sha256_hex(b"");
        assert_eq!(
            empty_hash,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let canonical = canonical_request("POST", &QUERY, &HEADERS, &empty_hash);
        assert_eq!(
            canonical,
            "POST\n\
             /\n\
             ImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd&RegionId=cn-shanghai\n\
             host:ecs.cn-shanghai.aliyuncs.com\n\
             x-acs-action:RunInstances\n\
             x-acs-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n\
             x-acs-date:2023-10-26T10:22:32Z\n\
             x-acs-signature-nonce:3156853299f313e23d1673dc12e1703d\n\
             x-acs-version:2014-05-26\n\
             \n\
             host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let text = string_to_sign(&canonical);
        assert_eq!(
            text,
            "ACS3-HMAC-SHA256\n7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259"
        );
        let signature = signature(&text, "YourAccessKeySecret");
        assert_eq!(
            signature,
            "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
        );
        let (_, signed) = canonical_headers(&HEADERS);
        assert_eq!(
            authorization("YourAccessKeyId", &signed, &signature),
            "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,Signature=06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
        );
    }

    #[test]
    fn header_order_and_case_do_not_matter() {
        let mut shuffled: Vec<(String, String)> = HEADERS
            .iter()
            .rev()
            .map(|(k, v)| (k.to_ascii_uppercase(), format!("  {v} ")))
            .collect();
        shuffled.rotate_left(2);
        let hash = sha256_hex(b"");
        assert_eq!(
            canonical_request("POST", &QUERY, &shuffled, &hash),
            canonical_request("POST", &QUERY, &HEADERS, &hash)
        );
    }

    #[test]
    fn everything_signed_changes_the_signature() {
        let hash = sha256_hex(b"");
        let base = signature(
            &string_to_sign(&canonical_request("POST", &QUERY, &HEADERS, &hash)),
            "YourAccessKeySecret",
        );
        let mut other_nonce = HEADERS.to_vec();
        other_nonce[4].1 = "another";
        let body_hash = sha256_hex(b"InstanceId=r-1");
        for canonical in [
            canonical_request("GET", &QUERY, &HEADERS, &hash),
            canonical_request("POST", &QUERY[..1], &HEADERS, &hash),
            canonical_request("POST", &QUERY, &other_nonce, &hash),
            canonical_request("POST", &QUERY, &HEADERS[..5], &hash),
            canonical_request("POST", &QUERY, &HEADERS, &body_hash),
        ] {
            assert_ne!(
                signature(&string_to_sign(&canonical), "YourAccessKeySecret"),
                base
            );
        }
        let canonical = canonical_request("POST", &QUERY, &HEADERS, &hash);
        assert_ne!(
            signature(&string_to_sign(&canonical), "YourAccessKeySecreT"),
            base
        );
    }

    #[test]
    fn repeated_headers_are_joined_sorted() {
        let (canonical, signed) = canonical_headers(&[("X-B", "2"), ("x-a", "1"), ("x-b", "1")]);
        assert_eq!(canonical, "x-a:1\nx-b:1,2\n");
        assert_eq!(signed, "x-a;x-b");
    }

    #[test]
    fn authorization_headers_are_parsed_strictly() {
        let value = "ACS3-HMAC-SHA256 Credential=id,SignedHeaders=host;x-acs-date,Signature=abc";
        assert_eq!(
            parse_authorization(value),
            Some(Authorization {
                access_key_id: "id",
                signed_headers: "host;x-acs-date",
                signature: "abc",
            })
        );
        for bad in [
            "",
            "ACS3-HMAC-SHA256",
            "ACS3-HMAC-SHA1 Credential=id,SignedHeaders=host,Signature=abc",
            "ACS3-HMAC-SHA256Credential=id,SignedHeaders=host,Signature=abc",
            "ACS3-HMAC-SHA256 Credential=id,SignedHeaders=host",
            "ACS3-HMAC-SHA256 Credential=id,SignedHeaders=host,Signature=",
            "ACS3-HMAC-SHA256 Credential=id,Credential=x,SignedHeaders=host,Signature=abc",
            "ACS3-HMAC-SHA256 Credential=id,SignedHeaders=host,Signature=abc,Extra=1",
            "acs id:signature",
        ] {
            assert_eq!(parse_authorization(bad), None, "{bad:?}");
        }
        let debug = format!("{:?}", parse_authorization(value));
        assert!(!debug.contains("abc"), "{debug}");
    }

    #[test]
    fn hex_is_lower_case() {
        assert_eq!(hex(&[0x00, 0x0f, 0xab, 0xff]), "000fabff");
    }
}
