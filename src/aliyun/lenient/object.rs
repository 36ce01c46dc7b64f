//! An object read key by key into a decoder's own record: the keys it
//! knows are read with their lenient readings, every other key is skipped
//! where it stands (`IgnoredAny`: nothing built). A key given twice is
//! read twice: the last value wins, as in a `serde_json::Map`, except for
//! a list, whose items are taken as they come, from both (no answer
//! repeats a key; what matters is that the cost stays bounded).

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, Error, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{Key, NOT_AN_OBJECT};

/// A record filled from an object's fields.
pub trait Fields<'de> {
    /// Reads the value of `key` (with `map.next_value()` or a seed) if it
    /// is one of the record's fields and says so; `Ok(false)` has it
    /// skipped.
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error>;
}

/// Reads an object into `T` (starting from the record given); anything
/// else than an object is `NOT_AN_OBJECT` (items that are not objects
/// never get here: `ListSeed` hands them over as `None`).
pub struct Object<T>(pub T);

impl<'de, T: Fields<'de>> DeserializeSeed<'de> for Object<T> {
    type Value = T;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T: Fields<'de>> Visitor<'de> for Object<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<T, A::Error> {
        while let Some(key) = map.next_key::<Key>()? {
            if !self.0.field(key.as_str(), &mut map)? {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(self.0)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<T, A::Error> {
        Err(A::Error::custom(NOT_AN_OBJECT))
    }

    fn visit_unit<E: Error>(self) -> Result<T, E> {
        Err(E::custom(NOT_AN_OBJECT))
    }

    fn visit_str<E: Error>(self, _: &str) -> Result<T, E> {
        Err(E::custom(NOT_AN_OBJECT))
    }

    fn visit_bool<E: Error>(self, _: bool) -> Result<T, E> {
        Err(E::custom(NOT_AN_OBJECT))
    }

    fn visit_i64<E: Error>(self, _: i64) -> Result<T, E> {
        Err(E::custom(NOT_AN_OBJECT))
    }

    fn visit_u64<E: Error>(self, _: u64) -> Result<T, E> {
        Err(E::custom(NOT_AN_OBJECT))
    }

    fn visit_f64<E: Error>(self, _: f64) -> Result<T, E> {
        Err(E::custom(NOT_AN_OBJECT))
    }
}
