//! The bound on nesting, checked before parsing.
//!
//! serde_json stops recursing at 128 levels, but skipping an unknown field
//! (`IgnoredAny`) does not recurse: it keeps one byte per open level on a
//! stack of its own, so a 16 MiB `[[[[…` costs 8 MiB there. No answer
//! nests anywhere near this deep (a cluster backup's shard's `ExtraInfo` is
//! at level 6), so a body that does is refused outright, in one pass over
//! its bytes that allocates nothing.

/// Levels of arrays and objects an answer may open, one inside the other.
pub const MAX_DEPTH: usize = 64;

/// Refuses a body that opens more than `MAX_DEPTH` levels. Strings are
/// skipped (a `[` in a string opens nothing); a body that is not JSON is
/// left to the parser.
pub(super) fn check(body: &[u8]) -> Result<(), String> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in body {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(format!("body nests deeper than {MAX_DEPTH} levels"));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_bodies_are_refused_and_strings_open_nothing() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(check(nested(MAX_DEPTH).as_bytes()).is_ok());
        let err = check(nested(MAX_DEPTH + 1).as_bytes()).unwrap_err();
        assert_eq!(err, "body nests deeper than 64 levels");
        // Brackets in strings, escaped quotes included, do not count.
        let in_string = format!(r#"{{"a":"\"{}"}}"#, "[".repeat(1000));
        assert!(check(in_string.as_bytes()).is_ok());
        // Siblings do not add up.
        let wide = format!("[{}]", vec!["{}"; 1000].join(","));
        assert!(check(wide.as_bytes()).is_ok());
        // Objects count as arrays do.
        let objects = format!("{}{}", r#"{"a":"#.repeat(65), "}".repeat(65));
        assert!(check(objects.as_bytes()).is_err());
    }
}
