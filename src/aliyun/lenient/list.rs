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

#[cfg(test)]
mod tests {
    use serde::de::MapAccess;

    use super::*;
    use crate::aliyun::lenient::{decode, Fields, Object, Text};

    /// `{"Items": …}` read into the names of its items (`?` for an item
    /// that is not an object).
    #[derive(Default)]
    struct Doc {
        names: Vec<String>,
    }

    #[derive(Default)]
    struct Item<'de> {
        name: Text<'de>,
    }

    impl<'de> Fields<'de> for Item<'de> {
        fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error> {
            if key != "Name" {
                return Ok(false);
            }
            self.name = map.next_value()?;
            Ok(true)
        }
    }

    impl<'de> Fields<'de> for Doc {
        fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error> {
            if key != "Items" {
                return Ok(false);
            }
            let names = &mut self.names;
            map.next_value_seed(ListSeed {
                field: "Items",
                wrapper: "Item",
                path: "Items.Item",
                within: Within(Some(("Outer", 4))),
                max_items: 3,
                item: |_| Object(Item::default()),
                each: |i, item: Option<Item>| match item {
                    Some(item) if item.name.get() == Some("bad") => {
                        Err(format!("Items.Item[{i}]: bad"))
                    }
                    Some(item) => {
                        names.push(item.name.get().unwrap_or("").to_string());
                        Ok(())
                    }
                    None => {
                        names.push("?".into());
                        Ok(())
                    }
                },
            })?;
            Ok(true)
        }
    }

    fn names(body: &str) -> Result<Vec<String>, String> {
        decode(body.as_bytes(), Object(Doc::default())).map(|d| d.names)
    }

    #[test]
    fn every_shape_of_a_list() {
        for (body, want) in [
            (
                r#"{"Items":{"Item":[{"Name":"a"},{"Name":"b"}]}}"#,
                &["a", "b"][..],
            ),
            (r#"{"Items":[{"Name":"a"},{"Name":"b"}]}"#, &["a", "b"]),
            (r#"{"Items":{"Item":{"Name":"a"}}}"#, &["a"]),
            (
                r#"{"Items":{"Item":[1,[2],{"Name":"a"}]}}"#,
                &["?", "?", "a"],
            ),
            (r#"{"Items":{"Other":[{"Name":"a"}],"Item":null}}"#, &[]),
            (r#"{"Items":{}}"#, &[]),
            (r#"{"Items":[]}"#, &[]),
            (r#"{"Items":""}"#, &[]),
            (r#"{"Items":null}"#, &[]),
            (r#"{"Other":{"Items":[{"Name":"a"}]}}"#, &[]),
        ] {
            let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
            assert_eq!(names(body), Ok(want), "{body}");
        }
        // Over the cap (three here), items that are not objects included.
        for body in [
            r#"{"Items":[{"Name":"a"},{"Name":"b"},{"Name":"c"},{"Name":"d"}]}"#,
            r#"{"Items":{"Item":[1,2,3,4]}}"#,
        ] {
            let err = names(body).unwrap_err();
            assert_eq!(err, "Outer[4]: Items.Item has more than 3 items");
        }
    }

    #[test]
    fn shapes_that_cannot_be_a_list() {
        for (body, want) in [
            (r#"{"Items":"x"}"#, "Outer[4]: Items is not an object"),
            (r#"{"Items":7}"#, "Outer[4]: Items is not an object"),
            (r#"{"Items":true}"#, "Outer[4]: Items is not an object"),
            (
                r#"{"Items":{"Item":"x"}}"#,
                "Outer[4]: Items.Item is not a list",
            ),
            (
                r#"{"Items":{"Item":""}}"#,
                "Outer[4]: Items.Item is not a list",
            ),
            (
                r#"{"Items":{"Item":1.5}}"#,
                "Outer[4]: Items.Item is not a list",
            ),
            // The item's own error, as the decoder wrote it.
            (
                r#"{"Items":[{"Name":"a"},{"Name":"bad"}]}"#,
                "Items.Item[1]: bad",
            ),
            (r#"[1]"#, "body is not a JSON object"),
            (r#""Items""#, "body is not a JSON object"),
        ] {
            assert_eq!(names(body), Err(want.to_string()), "{body}");
        }
        // Damaged JSON is the body's fault, wherever it is.
        let err = names(r#"{"Items":[{"Name":"a"},{"Name":"#).unwrap_err();
        assert!(err.starts_with("body is not JSON: "), "{err}");
        let err = names(r#"{"Items":[{"Name":"a"}]} x"#).unwrap_err();
        assert!(
            err.starts_with("body is not JSON: trailing characters"),
            "{err}"
        );
    }
}
