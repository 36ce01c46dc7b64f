//! `http_server_config.headers`: the five security headers the toolkit lets
//! a file set, checked as it checks them, and added to every response.

use std::collections::BTreeMap;

use hyper::header::{HeaderName, HeaderValue};

/// The headers a file may set, with the values allowed (empty: any).
const ALLOWED: &[(&str, &[&str])] = &[
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

/// Checked headers, ready to add.
pub type Headers = Vec<(HeaderName, HeaderValue)>;

/// Checks the file's `headers` map; the error keeps the toolkit's wording.
pub fn parse(raw: &BTreeMap<String, String>) -> Result<Headers, String> {
    let mut headers = Vec::new();
    for (name, value) in raw {
        let Some((_, values)) = ALLOWED.iter().find(|(allowed, _)| allowed == name) else {
            return Err(format!("HTTP header {name:?} can not be configured"));
        };
        if !values.is_empty() && !values.contains(&value.as_str()) {
            let expected: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
            return Err(format!(
                "invalid value for {name}. Expected one of: [{}], but got: {value:?}",
                expected.join(" ")
            ));
        }
        let value = HeaderValue::from_str(value)
            .map_err(|_| format!("the value of {name} is not a valid HTTP header value"))?;
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("{name:?} is not a valid HTTP header name"))?;
        headers.push((name, value));
    }
    Ok(headers)
}

/// Adds `headers` to `response`, replacing any of the same name.
pub fn apply(headers: &Headers, response: &mut hyper::HeaderMap) {
    for (name, value) in headers {
        response.insert(name.clone(), value.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_five_headers_are_accepted() {
        let headers = parse(&map(&[
            ("Content-Security-Policy", "default-src 'self'"),
            ("X-Frame-Options", "deny"),
            ("X-Content-Type-Options", "nosniff"),
            ("X-XSS-Protection", "1"),
            ("Strict-Transport-Security", "max-age=31536000"),
        ]))
        .expect("valid");
        assert_eq!(headers.len(), 5);
    }

    #[test]
    fn other_headers_and_values_are_refused_in_the_toolkits_words() {
        assert_eq!(
            parse(&map(&[("Content-Type", "text/plain")])).unwrap_err(),
            "HTTP header \"Content-Type\" can not be configured"
        );
        assert_eq!(
            parse(&map(&[("X-Frame-Options", "foo")])).unwrap_err(),
            "invalid value for X-Frame-Options. Expected one of: [\"deny\" \"sameorigin\"], but got: \"foo\""
        );
        assert!(parse(&map(&[("X-Content-Type-Options", "sniff")]))
            .unwrap_err()
            .starts_with("invalid value for X-Content-Type-Options"));
        assert!(parse(&map(&[("X-XSS-Protection", "1\nSet-Cookie: a=b")])).is_err());
    }
}
