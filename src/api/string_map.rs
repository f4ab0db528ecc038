//! A map of strings kept as one sorted vector, for the maps every stored object carries: a
//! `BTreeMap` allocates a whole node (640 bytes with berth's allocator) even for one entry,
//! and the reflector keeps each of 10,000 EcrRepositories. It reads, writes and is described
//! in the schema exactly as a `BTreeMap<String, String>`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Sorted by key, keys unique.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StringMap(Vec<(String, String)>);

impl StringMap {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// In key order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.into_iter()
    }

    pub fn get(&self, key: &str) -> Option<&String> {
        self.0
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .map(|index| &self.0[index].1)
    }

    pub fn to_btree_map(&self) -> BTreeMap<String, String> {
        self.0.iter().cloned().collect()
    }
}

impl<'a> IntoIterator for &'a StringMap {
    type Item = (&'a String, &'a String);
    type IntoIter = std::iter::Map<std::slice::Iter<'a, (String, String)>, fn(&'a (String, String)) -> Self::Item>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(key, value)| (key, value))
    }
}

impl FromIterator<(String, String)> for StringMap {
    /// A key given twice keeps its last value, as a map does.
    fn from_iter<I: IntoIterator<Item = (String, String)>>(entries: I) -> Self {
        let mut entries: Vec<(String, String)> = entries.into_iter().collect();
        // stable: equal keys stay in the given order, and the last of them is kept below
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.reverse();
        entries.dedup_by(|later, earlier| later.0 == earlier.0);
        entries.reverse();
        entries.shrink_to_fit();
        Self(entries)
    }
}

impl<const N: usize> From<[(String, String); N]> for StringMap {
    fn from(entries: [(String, String); N]) -> Self {
        entries.into_iter().collect()
    }
}

impl Serialize for StringMap {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for StringMap {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries;

        impl<'de> Visitor<'de> for Entries {
            type Value = StringMap;

            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("a map of strings")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<StringMap, A::Error> {
                let mut entries = Vec::with_capacity(access.size_hint().unwrap_or(0));
                while let Some(entry) = access.next_entry::<String, String>()? {
                    entries.push(entry);
                }
                Ok(entries.into_iter().collect())
            }
        }

        deserializer.deserialize_map(Entries)
    }
}

impl JsonSchema for StringMap {
    fn inline_schema() -> bool {
        <BTreeMap<String, String>>::inline_schema()
    }

    fn schema_name() -> Cow<'static, str> {
        <BTreeMap<String, String>>::schema_name()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        <BTreeMap<String, String>>::json_schema(generator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(key: &str, value: &str) -> (String, String) {
        (key.into(), value.into())
    }

    #[test]
    fn reads_and_writes_as_a_btree_map_does() {
        let text = r#"{"team":"api","cost-center":"cc-1","a":""}"#;
        let map: StringMap = serde_json::from_str(text).unwrap();
        let btree: BTreeMap<String, String> = serde_json::from_str(text).unwrap();
        assert_eq!(
            serde_json::to_string(&map).unwrap(),
            serde_json::to_string(&btree).unwrap()
        );
        assert_eq!(map.to_btree_map(), btree);
        assert_eq!(
            map.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            ["a", "cost-center", "team"]
        );
        assert_eq!(map.get("team").map(String::as_str), Some("api"));
        assert_eq!(map.get("nope"), None);
        assert_eq!(map.len(), 3);
        assert!(
            serde_json::from_str::<StringMap>(r#"{"a":1}"#).is_err(),
            "values are strings"
        );
        assert!(serde_json::from_str::<StringMap>("[]").is_err());
    }

    #[test]
    fn a_key_given_twice_keeps_its_last_value() {
        let map: StringMap = [pair("b", "1"), pair("a", "x"), pair("b", "2")].into();
        assert_eq!(map, StringMap::from([pair("a", "x"), pair("b", "2")]));
        let text: StringMap = serde_json::from_str(r#"{"k":"first","k":"last"}"#).unwrap();
        assert_eq!(text.get("k").map(String::as_str), Some("last"));
    }

    #[test]
    fn the_schema_is_a_btree_maps() {
        let mut generator = SchemaGenerator::default();
        assert_eq!(
            StringMap::json_schema(&mut generator),
            <BTreeMap<String, String>>::json_schema(&mut SchemaGenerator::default())
        );
    }
}
