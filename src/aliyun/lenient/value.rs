//! The lenient readings of one field: the same field arrives as a number in
//! one answer and as a string in the next, a time with or without its `Z`.
//!
//! Each reading deserializes from any JSON value and never fails on its
//! own: what it cannot read it says so (`Whole::Invalid`, `Time::Invalid`),
//! and the decoder decides whether that fails the item, with a message that
//! names the field. Arrays and objects where a value is expected are
//! skipped without being built. A missing field is the `Default` reading.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Number;

use crate::aliyun::json::{parse_time, quoted};

/// One JSON value as the readings see it. Strings are borrowed from the
/// body when they hold no escape.
enum Scalar<'de> {
    Null,
    /// An array or an object (skipped, not built).
    Nested,
    Bool(bool),
    Number(Number),
    Str(Cow<'de, str>),
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Bool(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Scalar::Number(v.into()))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Scalar::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        // As `serde_json::Value` reads it: a number that is not finite is null.
        Ok(Number::from_f64(v).map_or(Scalar::Null, Scalar::Number))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_string())))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Nested)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Nested)
    }
}

impl<'de> Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

/// A whole non-negative number, from a number or the text of one: a float
/// only when it is whole and in range (never rounded, wrapped or saturated).
fn number_u64(n: &Number) -> Option<u64> {
    n.as_u64().or_else(|| {
        n.as_f64()
            .filter(|f| *f >= 0.0 && f.fract() == 0.0 && *f < 1.8e19)
            .map(|f| f as u64)
    })
}

/// A field as text, sent as a string (trimmed) or a number (as written by
/// serde_json); absent when missing, null, empty or anything else.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Text<'de>(Option<Cow<'de, str>>);

impl<'de> Text<'de> {
    pub fn get(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// The text, owned (a copy only when it was borrowed from the body).
    pub fn into_string(self) -> Option<String> {
        self.0.map(Cow::into_owned)
    }

    fn from_scalar(s: Scalar<'de>) -> Self {
        Text(match s {
            Scalar::Str(Cow::Borrowed(s)) => {
                Some(Cow::Borrowed(s.trim())).filter(|s| !s.is_empty())
            }
            Scalar::Str(Cow::Owned(s)) => Some(s.trim())
                .filter(|t| !t.is_empty())
                .map(|t| Cow::Owned(t.to_string())),
            Scalar::Number(n) => Some(Cow::Owned(n.to_string())),
            Scalar::Null | Scalar::Nested | Scalar::Bool(_) => None,
        })
    }
}

// For any shorter lifetime too, so that `#[serde(borrow)]` fields work.
impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text: Text<'de> = Scalar::deserialize(d).map(Text::from_scalar)?;
        Ok(text)
    }
}

/// A whole non-negative number (a count, a size in bytes, days), sent as a
/// number or as a string.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Whole {
    /// Missing or null.
    #[default]
    Absent,
    /// An empty or blank string.
    Blank,
    Value(u64),
    /// Anything else: negative, fractional, too large, not a number, an
    /// array or an object.
    Invalid,
}

impl Whole {
    /// The number, if there is one.
    pub fn value(self) -> Option<u64> {
        match self {
            Whole::Value(n) => Some(n),
            _ => None,
        }
    }

    /// A size: missing or blank is unknown, anything else must be a number.
    pub fn size(self, name: &str) -> Result<Option<u64>, String> {
        match self {
            Whole::Absent | Whole::Blank => Ok(None),
            Whole::Value(n) => Ok(Some(n)),
            Whole::Invalid => Err(format!("{name} is not a whole number")),
        }
    }

    /// A count such as `TotalCount`: missing is unknown, anything else must
    /// be a number.
    pub fn count(self, name: &str) -> Result<Option<usize>, String> {
        match self {
            Whole::Absent => Ok(None),
            Whole::Value(n) => usize::try_from(n)
                .map(Some)
                .map_err(|_| format!("{name} is not a number")),
            Whole::Blank | Whole::Invalid => Err(format!("{name} is not a number")),
        }
    }

    fn from_scalar(s: Scalar<'_>) -> Self {
        match s {
            Scalar::Null => Whole::Absent,
            Scalar::Str(s) if s.trim().is_empty() => Whole::Blank,
            Scalar::Str(s) => s.trim().parse().map_or(Whole::Invalid, Whole::Value),
            Scalar::Number(n) => number_u64(&n).map_or(Whole::Invalid, Whole::Value),
            Scalar::Bool(_) | Scalar::Nested => Whole::Invalid,
        }
    }
}

impl<'de> Deserialize<'de> for Whole {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Scalar::deserialize(d).map(Whole::from_scalar)
    }
}

/// A yes/no sent as `1`/`0`, `"1"`/`"0"`, `true`/`false` or their text (any
/// case); `None` for anything else.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flag(pub Option<bool>);

impl Flag {
    fn from_scalar(s: Scalar<'_>) -> Self {
        Flag(match s {
            Scalar::Bool(b) => Some(b),
            Scalar::Number(n) => match number_u64(&n) {
                Some(0) => Some(false),
                Some(1) => Some(true),
                _ => None,
            },
            Scalar::Str(s) => match s.trim().to_ascii_lowercase().as_str() {
                "1" | "true" => Some(true),
                "0" | "false" => Some(false),
                _ => None,
            },
            Scalar::Null | Scalar::Nested => None,
        })
    }
}

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Scalar::deserialize(d).map(Flag::from_scalar)
    }
}

/// A time in any shape `aliyun::json::parse_time` reads (with or without
/// its `Z`, a fraction or an offset, to the minute), read from the field's
/// text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Time {
    /// No text: missing, null, empty.
    #[default]
    Absent,
    At(DateTime<Utc>),
    /// Text that is not a time, already quoted for an error (bounded).
    Invalid(String),
}

impl Time {
    /// The time, `None` when absent; an error naming `name` when the text
    /// is not a time.
    pub fn get(&self, name: &str) -> Result<Option<DateTime<Utc>>, String> {
        match self {
            Time::Absent => Ok(None),
            Time::At(t) => Ok(Some(*t)),
            Time::Invalid(shown) => Err(format!("{name} {shown} is not a time")),
        }
    }

    /// The time when it could be read; `None` otherwise.
    pub fn ok(&self) -> Option<DateTime<Utc>> {
        match self {
            Time::At(t) => Some(*t),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = Text::deserialize(d)?;
        Ok(match text.get() {
            None => Time::Absent,
            Some(raw) => parse_time(raw).map_or_else(|| Time::Invalid(quoted(raw)), Time::At),
        })
    }
}

/// An object key, borrowed from the body when it holds no escape.
pub struct Key<'de>(Cow<'de, str>);

impl Key<'_> {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Key(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Key(Cow::Owned(v.to_string())))
    }
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read<'a, T: Deserialize<'a>>(json: &'a str) -> T {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn text_from_strings_and_numbers() {
        assert_eq!(read::<Text>(r#"" r-1 ""#).get(), Some("r-1"));
        assert_eq!(read::<Text>("7").get(), Some("7"));
        assert_eq!(read::<Text>("7.5").get(), Some("7.5"));
        assert_eq!(read::<Text>("-3").get(), Some("-3"));
        assert_eq!(read::<Text>(r#""a\u0062""#).get(), Some("ab"));
        for absent in [r#""""#, r#""  ""#, "null", "true", "[1]", r#"{"a":1}"#] {
            assert_eq!(read::<Text>(absent).get(), None, "{absent}");
        }
    }

    #[test]
    fn whole_numbers_exactly_or_not_at_all() {
        for (json, want) in [
            ("7", Whole::Value(7)),
            (r#"" 7 ""#, Whole::Value(7)),
            ("7.0", Whole::Value(7)),
            ("-0", Whole::Value(0)),
            ("18446744073709551615", Whole::Value(u64::MAX)),
            ("null", Whole::Absent),
            (r#"" ""#, Whole::Blank),
            ("7.5", Whole::Invalid),
            ("-1", Whole::Invalid),
            ("1e300", Whole::Invalid),
            (r#""+7x""#, Whole::Invalid),
            ("true", Whole::Invalid),
            ("[7]", Whole::Invalid),
            ("{}", Whole::Invalid),
        ] {
            assert_eq!(read::<Whole>(json), want, "{json}");
        }
        assert_eq!(Whole::Blank.size("S"), Ok(None));
        assert_eq!(Whole::Blank.count("N"), Err("N is not a number".into()));
        assert_eq!(
            Whole::Invalid.size("S"),
            Err("S is not a whole number".into())
        );
    }

    #[test]
    fn flags_in_every_spelling() {
        for (json, want) in [
            ("1", Some(true)),
            (r#""1""#, Some(true)),
            ("true", Some(true)),
            (r#"" True ""#, Some(true)),
            ("1.0", Some(true)),
            ("0", Some(false)),
            (r#""false""#, Some(false)),
            ("2", None),
            (r#""yes""#, None),
            ("null", None),
            ("{}", None),
        ] {
            assert_eq!(read::<Flag>(json).0, want, "{json}");
        }
    }

    #[test]
    fn times_read_or_quoted() {
        let t = read::<Time>(r#""2019-03-14T05:28:50""#);
        assert_eq!(
            t.get("T").unwrap().map(|t| t.timestamp()),
            Some(1_552_541_330)
        );
        assert_eq!(read::<Time>(r#""""#), Time::Absent);
        assert_eq!(
            read::<Time>("5").get("T"),
            Err("T \"5\" is not a time".into())
        );
        let huge = format!("\"{}\"", "9".repeat(100_000));
        let err = read::<Time>(&huge).get("T").unwrap_err();
        assert!(err.len() < 100, "{err}");
    }

    #[test]
    fn strings_without_escapes_are_borrowed() {
        let body = r#"" r-1 ""#.to_string();
        let text: Text = serde_json::from_str(&body).unwrap();
        assert!(matches!(text.0, Some(Cow::Borrowed("r-1"))));
    }
}
