//! Two readings every decoder shares: the times Alibaba sends, with or
//! without their `Z`, and a bounded quote of a value for an error. The
//! decoding itself, streaming and lenient, is `aliyun::lenient`.

use chrono::{DateTime, NaiveDateTime, Utc};

/// `2019-03-14T05:28:50Z`, also without the `Z` (some calls drop it: UTC is
/// meant), with fractions, or with an offset.
pub fn parse_time(raw: &str) -> Option<DateTime<Utc>> {
    let raw = raw.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Some(t.with_timezone(&Utc));
    }
    let naive = raw.trim_end_matches('Z');
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(naive, format) {
            return Some(t.and_utc());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn times_in_the_shapes_alibaba_sends() {
        let t = Utc.with_ymd_and_hms(2019, 3, 14, 5, 28, 50).unwrap();
        assert_eq!(parse_time("2019-03-14T05:28:50Z"), Some(t));
        assert_eq!(parse_time("2019-03-14T05:28:50"), Some(t));
        assert_eq!(parse_time("2019-03-14T13:28:50+08:00"), Some(t));
        assert_eq!(parse_time("2019-03-14T05:28:50.000Z"), Some(t));
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time("2019-13-14T05:28:50Z"), None);
    }
}

/// A value from an answer, quoted for an error or a log line: at most 40
/// characters of it *as written* (escapes count), so that a huge or exotic
/// field cannot make a huge line.
pub fn quoted(raw: &str) -> String {
    const SHOWN: usize = 40;
    let mut out = String::from("\"");
    let mut written = 0;
    for c in raw.chars() {
        let escaped: String = c.escape_debug().collect();
        let width = escaped.chars().count();
        if written + width > SHOWN {
            out.push_str(&format!("\"… ({} bytes)", raw.len()));
            return out;
        }
        written += width;
        out.push_str(&escaped);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod quoting {
    use super::quoted;

    #[test]
    fn long_values_are_cut_short() {
        assert_eq!(quoted("2019-13-01"), "\"2019-13-01\"");
        let huge = "x".repeat(1 << 20);
        let q = quoted(&huge);
        assert!(q.len() < 80, "{q}");
        assert!(q.ends_with(&format!("… ({} bytes)", 1 << 20)), "{q}");
        // Cut on a character boundary.
        assert!(quoted(&"é".repeat(100)).starts_with("\"éé"));
        // Escapes count: characters that escape long cannot make it long.
        for c in ['\u{e000}', '\u{10ffff}', '\u{7}', '"'] {
            let q = quoted(&c.to_string().repeat(1000));
            assert!(q.chars().count() < 80, "{q}");
        }
        assert_eq!(quoted("a\"b"), "\"a\\\"b\"");
    }
}
