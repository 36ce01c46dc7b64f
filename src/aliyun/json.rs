//! Lenient readers for Alibaba's JSON: the same field arrives as a number in
//! one answer and as a string in the next, times with or without their `Z`.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Value};

/// A field as text, whether sent as a string or a number; `None` when
/// missing, null or empty.
pub fn text(item: &Map<String, Value>, name: &str) -> Option<String> {
    match item.get(name)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A whole non-negative number, sent as a number or as a string.
pub fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| *f >= 0.0 && f.fract() == 0.0 && *f < 1.8e19)
                .map(|f| f as u64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

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
