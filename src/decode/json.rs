//! Decoding straight from JSON text, without a `Value` (the admission fast path). Everything
//! here reads what [`super::decode`] reads, or gives up and leaves the `Value` path to name the
//! problem.

use super::strict::Strict;
use crate::api::AnnexaKind;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::cell::Cell;

/// The top level of an Annexa object read straight from JSON text, without a `Value` (the
/// admission fast path): metadata and status decoded as the kind's type decodes them (fields
/// they do not know are not the user's mistake), the spec kept raw for [`TopLevel::assemble`]
/// to decode strictly. Together they accept what [`super::typed`] accepts or less (a duplicate or
/// unknown top-level key, a mapping written as a list) and read it the same; they say nothing
/// about what they refuse: decode through [`super::decode`] to name the problem. The caller checks the
/// text with [`value_accepts`]: ignored fields are skipped here without looking inside.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct TopLevel<'a, Status> {
    #[serde(borrow)]
    pub api_version: Cow<'a, str>,
    #[serde(borrow)]
    pub kind: Cow<'a, str>,
    pub metadata: ObjectMeta,
    #[serde(borrow)]
    pub spec: &'a RawValue,
    // Missing is None without `default` (which would ask for `Status: Default`).
    pub status: Option<Status>,
}

impl<'a, Status: DeserializeOwned> TopLevel<'a, Status> {
    pub(crate) fn read(json: &'a str) -> Option<Self> {
        serde_json::from_str::<MapOnly<Self>>(json)
            .ok()
            .map(|MapOnly(top)| top)
    }

    /// The object, its spec decoded strictly: None if the spec holds a field its type does not
    /// have or does not decode.
    pub(crate) fn assemble<K: AnnexaKind<Status = Status>>(self) -> Option<K> {
        let ignored = Cell::new(false);
        let mut de = serde_json::Deserializer::from_str(self.spec.get());
        let spec = K::Spec::deserialize(Strict::new(&mut de, &ignored)).ok()?;
        de.end().ok()?;
        (!ignored.get()).then(|| K::assemble(self.metadata, spec, self.status))
    }
}

/// Whether `serde_json` reads JSON text into a `Value`, checked without building one. Text the
/// webhook receives is only known to be well-formed; a `Value` also refuses nesting deeper than
/// 127 levels, lone surrogates in `\u` escapes, numbers beyond `f64`, and maps whose first key
/// is serde_json's raw-value token. The fast paths skip what they ignore without looking
/// inside, so they run only on text this accepts: they never read what the `Value` path
/// refuses.
pub(crate) fn value_accepts(json: &str) -> bool {
    serde_json::from_str::<ValueSyntax>(json).is_ok()
}

/// Any JSON value, visited the way `Value` visits it (strings, numbers and keys parsed, nesting
/// counted) and then dropped.
struct ValueSyntax;

impl<'de> Deserialize<'de> for ValueSyntax {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueSyntax)
    }
}

impl<'de> serde::de::Visitor<'de> for ValueSyntax {
    type Value = ValueSyntax;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_unit<E>(self) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self, A::Error> {
        while seq.next_element::<ValueSyntax>()?.is_some() {}
        Ok(self)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self, A::Error> {
        let mut first = true;
        while let Some(FirstKey(token)) = map.next_key()? {
            if first && token {
                return Err(serde::de::Error::custom("raw value token"));
            }
            first = false;
            map.next_value::<ValueSyntax>()?;
        }
        Ok(self)
    }
}

/// A map key, and whether it is the token that makes a `Value` parse the entry's string as JSON.
struct FirstKey(bool);

impl<'de> Deserialize<'de> for FirstKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Key;
        impl serde::de::Visitor<'_> for Key {
            type Value = FirstKey;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E>(self, key: &str) -> Result<FirstKey, E> {
                Ok(FirstKey(key == "$serde_json::private::RawValue"))
            }
        }
        deserializer.deserialize_str(Key)
    }
}

/// Decodes `T` from a JSON object only. A derived `Deserialize` also accepts a list of the
/// fields in order, which `Value::get` (what the `Value` path navigates with) never reads as
/// a mapping: without this, a fast path could read an object the slow path refuses.
pub(crate) struct MapOnly<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for MapOnly<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Mapping<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Mapping<T> {
            type Value = T;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        deserializer
            .deserialize_map(Mapping(std::marker::PhantomData))
            .map(MapOnly)
    }
}
