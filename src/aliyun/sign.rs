//! RPC request signing, "signature V2" (HMAC-SHA1), as a pure function.
//!
//! Alibaba's algorithm: percent-encode every parameter name and value (RFC
//! 3986, upper-case hex), sort by encoded name, join with `&`, and sign
//! `METHOD&%2F&encode(joined)` with the key `secret + "&"`.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// Percent-encodes per RFC 3986: only `A-Z a-z 0-9 - _ . ~` stay as they are.
/// Space is `%20` (never `+`), `*` is `%2A`.
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push('%');
            out.push(char::from(HEX[(byte >> 4) as usize]));
            out.push(char::from(HEX[(byte & 0x0f) as usize]));
        }
    }
    out
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// `name=value&…`, every part percent-encoded, sorted by encoded name.
/// The same string serves as the URL query (with `Signature` appended).
pub fn canonical_query<K: AsRef<str>, V: AsRef<str>>(params: &[(K, V)]) -> String {
    let mut encoded: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (percent_encode(k.as_ref()), percent_encode(v.as_ref())))
        .collect();
    encoded.sort();
    let mut out = String::new();
    for (i, (k, v)) in encoded.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// The text that is signed. `params` must not contain `Signature`.
pub fn string_to_sign<K: AsRef<str>, V: AsRef<str>>(method: &str, params: &[(K, V)]) -> String {
    format!(
        "{}&{}&{}",
        method,
        percent_encode("/"),
        percent_encode(&canonical_query(params))
    )
}

/// The `Signature` value (base64, not yet percent-encoded).
pub fn sign<K: AsRef<str>, V: AsRef<str>>(method: &str, params: &[(K, V)], secret: &str) -> String {
    sign_string(&string_to_sign(method, params), secret)
}

/// Signs an already built string-to-sign.
pub fn sign_string(string_to_sign: &str, secret: &str) -> String {
    let key = format!("{secret}&");
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha1>>::new_from_slice(key.as_bytes()).expect("HMAC takes any key length");
    mac.update(string_to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Compares two signatures without leaking through timing where they differ.
pub fn signatures_equal(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parameters of Alibaba's published example (signature documentation).
    fn published_vector() -> Vec<(&'static str, &'static str)> {
        vec![
            ("AccessKeyId", "testid"),
            ("Action", "DescribeRegions"),
            ("Format", "XML"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"),
            ("SignatureVersion", "1.0"),
            ("Timestamp", "2016-02-23T12:46:24Z"),
            ("Version", "2014-05-26"),
        ]
    }

    #[test]
    fn published_get_vector() {
        let params = published_vector();
        assert_eq!(
            string_to_sign("GET", &params),
            "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf%26SignatureVersion%3D1.0%26Timestamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26"
        );
        assert_eq!(
            sign("GET", &params, "testsecret"),
            "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
        );
    }

    #[test]
    fn published_post_vector() {
        assert_eq!(
            sign("POST", &published_vector(), "testsecret"),
            "MxbnVAM4w6sft9xjVpe/GCKueuk="
        );
    }

    #[test]
    fn order_of_parameters_does_not_matter() {
        let mut params = published_vector();
        params.reverse();
        assert_eq!(
            sign("GET", &params, "testsecret"),
            "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
        );
    }

    #[test]
    fn encoding_matches_the_sdks() {
        assert_eq!(percent_encode(" ~/*-+"), "%20~%2F%2A-%2B");
        assert_eq!(percent_encode("AZaz09-_.~"), "AZaz09-_.~");
        assert_eq!(percent_encode("a=b&c"), "a%3Db%26c");
    }

    #[test]
    fn non_ascii_values_are_encoded_as_utf8() {
        assert_eq!(percent_encode("备份"), "%E5%A4%87%E4%BB%BD");
        assert_eq!(percent_encode("é"), "%C3%A9");
        // And such a value changes the signature like any other.
        let mut params = published_vector();
        params.push(("InstanceName", "备份"));
        assert_ne!(
            sign("GET", &params, "testsecret"),
            "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
        );
        assert!(string_to_sign("GET", &params)
            .contains("InstanceName%3D%25E5%25A4%2587%25E4%25BB%25BD"));
    }

    #[test]
    fn security_token_is_signed() {
        let mut params = published_vector();
        params.push(("SecurityToken", "sts-token"));
        let text = string_to_sign("GET", &params);
        assert!(text.contains("SecurityToken%3Dsts-token"), "{text}");
        let without = sign("GET", &published_vector(), "testsecret");
        let with = sign("GET", &params, "testsecret");
        assert_ne!(without, with);
        params.pop();
        params.push(("SecurityToken", "other-token"));
        assert_ne!(sign("GET", &params, "testsecret"), with);
    }

    #[test]
    fn secret_changes_the_signature() {
        assert_ne!(
            sign("GET", &published_vector(), "testsecreT"),
            "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
        );
    }

    #[test]
    fn constant_time_comparison() {
        assert!(signatures_equal("abc=", "abc="));
        assert!(!signatures_equal("abc=", "abd="));
        assert!(!signatures_equal("abc", "abc="));
    }
}
