//! A list as Alibaba sends it: `{"Backups": {"Backup": [..]}}`, also with
//! the wrapper left out (`"Backups": [..]`), a single object instead of a
//! list (`{"Backup": {..}}`), or nothing (missing, `null`, `""`, `{}`).
//!
//! The items are read one by one and handed to the decoder as they come,
//! so that an answer is never held as a tree; at most `max_items` of them,
//! and an item that is not an object is handed over as `None` (skipped,
//! not built) for the decoder to refuse or ignore.

use std::fmt;

use serde::de::value::MapAccessDeserializer;
use serde::de::{DeserializeSeed, Deserializer, Error, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::Key;

/// The item of an outer list a nested list belongs to, for its errors
/// (`ClusterBackups[2]: `).
#[derive(Debug, Clone, Copy, Default)]
pub struct Within<'a>(pub Option<(&'a str, usize)>);

impl fmt::Display for Within<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.0 {
            Some((path, index)) => write!(f, "{path}[{index}]: "),
            None => Ok(()),
        }
    }
}

/// Reads the list in field `field` (the value of that key), item by item.
///
/// - `item(i)` gives the seed that reads the `i`th item from its object;
/// - `each(i, item)` takes it (`None`: not an object); its error stops the
///   decoding and is the decoder's message;
/// - more than `max_items` items is an error (`<path> has more than N
///   items`), as are shapes that cannot be a list (`<field> is not an
///   object`, `<field>.<wrapper> is not a list`).
pub struct ListSeed<'a, M, F> {
    pub field: &'a str,
    pub wrapper: &'a str,
    /// The items' name in errors: `Backups.Backup`, `ClusterBackups`.
    pub path: &'a str,
    pub within: Within<'a>,
    pub max_items: usize,
    pub item: M,
    pub each: F,
}

impl<'a, M, F> ListSeed<'a, M, F> {
    fn fail<E: Error>(&self, what: fmt::Arguments) -> E {
        E::custom(format_args!("{}{what}", self.within))
    }

    fn not_an_object<E: Error>(&self) -> E {
        self.fail(format_args!("{} is not an object", self.field))
    }

    fn not_a_list<E: Error>(&self) -> E {
        self.fail(format_args!(
            "{}.{} is not a list",
            self.field, self.wrapper
        ))
    }
}

impl<'de, M, S, F> ListSeed<'_, M, F>
where
    M: FnMut(usize) -> S,
    S: DeserializeSeed<'de>,
    F: FnMut(usize, Option<S::Value>) -> Result<(), String>,
{
    fn take<E: Error>(&mut self, index: usize, item: Option<S::Value>) -> Result<(), E> {
        if index >= self.max_items {
            return Err(self.fail(format_args!(
                "{} has more than {} items",
                self.path, self.max_items
            )));
        }
        (self.each)(index, item).map_err(E::custom)
    }

    fn items<A: SeqAccess<'de>>(&mut self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        loop {
            let seed = Element((self.item)(index));
            match seq.next_element_seed(seed)? {
                None => return Ok(()),
                Some(item) => self.take(index, item)?,
            }
            index += 1;
        }
    }

    fn single<A: MapAccess<'de>>(&mut self, map: A) -> Result<(), A::Error> {
        let item = (self.item)(0).deserialize(MapAccessDeserializer::new(map))?;
        self.take(0, Some(item))
    }
}

impl<'de, M, S, F> DeserializeSeed<'de> for ListSeed<'_, M, F>
where
    M: FnMut(usize) -> S,
    S: DeserializeSeed<'de>,
    F: FnMut(usize, Option<S::Value>) -> Result<(), String>,
{
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(mut self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(Field(&mut self))
    }
}

/// The value of the list's field.
struct Field<'s, 'a, M, F>(&'s mut ListSeed<'a, M, F>);

impl<'de, M, S, F> Visitor<'de> for Field<'_, '_, M, F>
where
    M: FnMut(usize) -> S,
    S: DeserializeSeed<'de>,
    F: FnMut(usize, Option<S::Value>) -> Result<(), String>,
{
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list")
    }

    fn visit_unit<E: Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        self.0.items(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Key>()? {
            if key.as_str() == self.0.wrapper {
                map.next_value_seed(Wrapped(&mut *self.0))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }

    fn visit_str<E: Error>(self, v: &str) -> Result<(), E> {
        if v.is_empty() {
            Ok(())
        } else {
            Err(self.0.not_an_object())
        }
    }

    fn visit_bool<E: Error>(self, _: bool) -> Result<(), E> {
        Err(self.0.not_an_object())
    }

    fn visit_i64<E: Error>(self, _: i64) -> Result<(), E> {
        Err(self.0.not_an_object())
    }

    fn visit_u64<E: Error>(self, _: u64) -> Result<(), E> {
        Err(self.0.not_an_object())
    }

    fn visit_f64<E: Error>(self, _: f64) -> Result<(), E> {
        Err(self.0.not_an_object())
    }
}

/// The value of the wrapper key: the list, or a single item.
struct Wrapped<'s, 'a, M, F>(&'s mut ListSeed<'a, M, F>);

impl<'de, M, S, F> DeserializeSeed<'de> for Wrapped<'_, '_, M, F>
where
    M: FnMut(usize) -> S,
    S: DeserializeSeed<'de>,
    F: FnMut(usize, Option<S::Value>) -> Result<(), String>,
{
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, M, S, F> Visitor<'de> for Wrapped<'_, '_, M, F>
where
    M: FnMut(usize) -> S,
    S: DeserializeSeed<'de>,
    F: FnMut(usize, Option<S::Value>) -> Result<(), String>,
{
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list")
    }

    fn visit_unit<E: Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        self.0.items(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        self.0.single(map)
    }

    fn visit_str<E: Error>(self, _: &str) -> Result<(), E> {
        Err(self.0.not_a_list())
    }

    fn visit_bool<E: Error>(self, _: bool) -> Result<(), E> {
        Err(self.0.not_a_list())
    }

    fn visit_i64<E: Error>(self, _: i64) -> Result<(), E> {
        Err(self.0.not_a_list())
    }

    fn visit_u64<E: Error>(self, _: u64) -> Result<(), E> {
        Err(self.0.not_a_list())
    }

    fn visit_f64<E: Error>(self, _: f64) -> Result<(), E> {
        Err(self.0.not_a_list())
    }
}

/// One element of the list: an object read by the item's seed, or `None`
/// for anything else (skipped without being built).
struct Element<S>(S);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Element<S> {
    type Value = Option<S::Value>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, S: DeserializeSeed<'de>> Visitor<'de> for Element<S> {
    type Value = Option<S::Value>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an item")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.0
            .deserialize(MapAccessDeserializer::new(map))
            .map(Some)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_str<E: Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_bool<E: Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E: Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E: Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E: Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
}
