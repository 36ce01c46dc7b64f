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

/// The items of `doc[field][wrapper]`, as in `{"Backups": {"Backup": [..]}}`,
/// also when the wrapper is left out, the list is a single object, or the
/// field is missing, null or an empty string.
pub fn wrapped_list<'a>(
    doc: &'a Map<String, Value>,
    field: &str,
    wrapper: &str,
) -> Result<Vec<&'a Value>, String> {
    Ok(match doc.get(field) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.iter().collect(),
        Some(Value::Object(o)) => match o.get(wrapper) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items.iter().collect(),
            Some(single @ Value::Object(_)) => vec![single],
            Some(_) => return Err(format!("{field}.{wrapper} is not a list")),
        },
        Some(Value::String(s)) if s.is_empty() => Vec::new(),
        Some(_) => return Err(format!("{field} is not an object")),
    })
}

/// Decodes each item (an object) with `decode`; an error names the item
/// (`path[i]`).
pub fn decode_each<T>(
    items: Vec<&Value>,
    path: &str,
    decode: impl Fn(&Map<String, Value>) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let item = item
                .as_object()
                .ok_or(format!("{path}[{i}] is not an object"))?;
            decode(item).map_err(|e| format!("{path}[{i}]: {e}"))
        })
        .collect()
}

/// A count such as `TotalCount`, sent as a number or a string; `None` when
/// missing.
pub fn count(doc: &Map<String, Value>, field: &str) -> Result<Option<usize>, String> {
    match doc.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => Ok(Some(
            as_u64(v).ok_or(format!("{field} is not a number"))? as usize
        )),
    }
}

/// The body as a JSON object.
pub fn object(body: &[u8]) -> Result<Map<String, Value>, String> {
    match serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))? {
        Value::Object(doc) => Ok(doc),
        _ => Err("body is not a JSON object".into()),
    }
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
