//! Lenient, streaming decoding of Alibaba's JSON answers.
//!
//! The answers are read straight from the body's bytes with
//! `serde_json::from_slice` into typed readings, never into a
//! `serde_json::Value` of the whole body: a field the decoder does not read
//! is skipped where it stands (`serde::de::IgnoredAny`, which allocates
//! nothing), so what an answer costs is what its facts cost, not what its
//! padding costs (a 16 MiB answer of zeros in an unknown field peaked at
//! ~300 MiB when it was parsed into a `Value` first; issue 11).
//!
//! - `value`: the lenient readings of one field (`Text`, `Whole`, `Flag`,
//!   `Time`) and object keys (`Key`).
//! - `list`: a list that may come wrapped (`{"Backup": [..]}`), as a single
//!   object, bare, empty or missing, read item by item with a cap.
//! - `object`: an object read key by key into a decoder's record (`Fields`),
//!   unknown keys skipped.
//! - `depth`: the bound on nesting, checked before any parsing.
//!
//! The bounds on what one answer may cost (see `MAX_DEPTH` and each
//! decoder's item caps) fail that answer's call with a decode error, counted
//! like any other.

mod depth;
mod list;
mod object;
mod value;

pub use depth::MAX_DEPTH;
pub use list::{ListSeed, Within};
pub use object::{Fields, Object};
pub use value::{Flag, Key, Text, Time, Whole};

use serde::de::DeserializeSeed;

/// Refuses a body that nests deeper than `MAX_DEPTH`, before any parser
/// sees it (the error documents and request IDs read outside `decode`).
pub fn check_depth(body: &[u8]) -> Result<(), String> {
    depth::check(body)
}

/// Decodes `body` with `seed` (whose visitor reads the top-level object):
/// refuses a body that nests deeper than `MAX_DEPTH` before parsing it,
/// and turns serde's errors into one-line reasons: `body is not JSON: …`
/// for a body that is not JSON, or the decoder's own message (which names
/// the field) without serde's position.
pub fn decode<'de, S: DeserializeSeed<'de>>(body: &'de [u8], seed: S) -> Result<S::Value, String> {
    depth::check(body)?;
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = seed.deserialize(&mut de).map_err(reason)?;
    de.end().map_err(reason)?;
    Ok(value)
}

/// The error a decoder gives for a top-level value that is not an object.
pub const NOT_AN_OBJECT: &str = "body is not a JSON object";

/// A serde_json error as a reason: the decoders' own messages (data
/// errors) as they wrote them, the others as the body not being JSON.
fn reason(e: serde_json::Error) -> String {
    match e.classify() {
        serde_json::error::Category::Data => without_position(&e.to_string()).to_string(),
        _ => format!("body is not JSON: {e}"),
    }
}

/// `message` without the ` at line L column C` serde_json appends.
pub(crate) fn without_position(message: &str) -> &str {
    let Some(at) = message.rfind(" at line ") else {
        return message;
    };
    let rest = &message[at + " at line ".len()..];
    let mut words = rest.split(' ');
    let well_formed = matches!(
        (words.next(), words.next(), words.next(), words.next()),
        (Some(line), Some("column"), Some(column), None)
            if line.bytes().all(|b| b.is_ascii_digit()) && column.bytes().all(|b| b.is_ascii_digit())
    );
    if well_formed {
        &message[..at]
    } else {
        message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_cut_off_and_nothing_else() {
        assert_eq!(
            without_position("Backups.Backup[0]: x at line 1 column 52"),
            "Backups.Backup[0]: x"
        );
        assert_eq!(without_position("no position"), "no position");
        assert_eq!(
            without_position("\"at line 3\" is not a time"),
            "\"at line 3\" is not a time"
        );
    }
}
