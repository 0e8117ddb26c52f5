//! Lenient serde field helpers for Xtream Codes JSON.
//!
//! Xtream panels are inconsistent about JSON types: numbers arrive as strings
//! (`"exp_date":"1550619710"`), as floats where integers are meant, as `""`
//! or `null` when missing; booleans arrive as `0`/`1`/`"1"`/`true`; lists
//! arrive as arrays, single strings, `{}` or `null`. Strict typing would reject
//! whole responses over one such field, so every field of the types in
//! [`super`] goes through one of these helpers, which map anything unusable to
//! "absent" instead of failing. The one exception is [`id`], used for the ids
//! without which an element is useless, which fails so that the element is
//! skipped and counted.
//!
//! Use them with `#[serde(default, deserialize_with = "de::opt_i64")]`.

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize as _;
use std::fmt;

/// Any JSON value, reduced to what a scalar field can use.
///
/// Arrays and objects are consumed and reported as [`Loose::Other`], so a
/// surprising nested value never fails the surrounding element.
#[derive(Debug, Clone, PartialEq)]
pub enum Loose {
    /// `null` (or an absent value).
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer that fits in `i64`.
    I64(i64),
    /// A non-negative integer above `i64::MAX`.
    U64(u64),
    /// A floating-point number.
    F64(f64),
    /// A string.
    Str(String),
    /// An array or object (contents discarded).
    Other,
}

impl<'de> serde::Deserialize<'de> for Loose {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LooseVisitor)
    }
}

struct LooseVisitor;

impl<'de> Visitor<'de> for LooseVisitor {
    type Value = Loose;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Loose, E> {
        Ok(Loose::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Loose, E> {
        Ok(Loose::I64(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Loose, E> {
        Ok(i64::try_from(v).map_or(Loose::U64(v), Loose::I64))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Loose, E> {
        Ok(Loose::F64(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Loose, E> {
        Ok(Loose::Str(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Loose, E> {
        Ok(Loose::Str(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Loose, E> {
        Ok(Loose::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Loose, E> {
        Ok(Loose::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Loose, D::Error> {
        d.deserialize_any(LooseVisitor)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Loose, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Loose::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Loose, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Loose::Other)
    }
}

impl Loose {
    /// Integer reading: numbers (floats truncated), numeric strings, bools as
    /// 0/1. Everything else (including `""`, `"N/A"`, NaN) is `None`.
    pub fn to_i64(&self) -> Option<i64> {
        match self {
            Loose::I64(v) => Some(*v),
            Loose::U64(_) | Loose::Null | Loose::Other => None,
            Loose::F64(f) => f64_to_i64(*f),
            Loose::Bool(b) => Some(i64::from(*b)),
            Loose::Str(s) => {
                let s = s.trim();
                s.parse::<i64>().ok().or_else(|| s.parse::<f64>().ok().and_then(f64_to_i64))
            }
        }
    }

    /// Float reading: numbers, numeric strings, bools as 0/1; non-finite is `None`.
    pub fn to_f64(&self) -> Option<f64> {
        let v = match self {
            Loose::I64(v) => *v as f64,
            Loose::U64(v) => *v as f64,
            Loose::F64(f) => *f,
            Loose::Bool(b) => f64::from(u8::from(*b)),
            Loose::Str(s) => s.trim().parse::<f64>().ok()?,
            Loose::Null | Loose::Other => return None,
        };
        v.is_finite().then_some(v)
    }

    /// String reading: strings as-is, numbers and bools formatted; blank
    /// strings, `null`, arrays and objects are `None`.
    pub fn into_string(self) -> Option<String> {
        match self {
            Loose::Str(s) if s.trim().is_empty() => None,
            Loose::Str(s) => Some(s),
            Loose::I64(v) => Some(v.to_string()),
            Loose::U64(v) => Some(v.to_string()),
            Loose::F64(v) if v.is_finite() => Some(v.to_string()),
            Loose::Bool(b) => Some(b.to_string()),
            Loose::F64(_) | Loose::Null | Loose::Other => None,
        }
    }

    /// Truthiness: `true`, non-zero numbers, and strings `1`/`true`/`yes`/`on`
    /// (or any non-zero number) are true; everything else is false.
    pub fn truthy(&self) -> bool {
        match self {
            Loose::Bool(b) => *b,
            Loose::I64(v) => *v != 0,
            Loose::U64(_) => true,
            Loose::F64(f) => *f != 0.0 && !f.is_nan(),
            Loose::Str(s) => {
                let s = s.trim();
                ["1", "true", "yes", "y", "on"].iter().any(|t| s.eq_ignore_ascii_case(t))
                    || s.parse::<f64>().is_ok_and(|f| f != 0.0 && !f.is_nan())
            }
            Loose::Null | Loose::Other => false,
        }
    }
}

fn f64_to_i64(f: f64) -> Option<i64> {
    // 2^63 is exactly representable; i64::MAX as f64 rounds up to it, so the
    // upper bound must be exclusive.
    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
    (-TWO_POW_63..TWO_POW_63).contains(&f).then(|| f.trunc() as i64)
}

/// Optional integer from a number, numeric string, float or bool; anything
/// else (`null`, `""`, garbage) is `None`.
pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(Loose::deserialize(d)?.to_i64())
}

/// Optional float from a number or numeric string; anything else is `None`.
pub fn opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(Loose::deserialize(d)?.to_f64())
}

/// Optional string; numbers and bools are formatted, blank strings and
/// `null` are `None`.
pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Loose::deserialize(d)?.into_string())
}

/// Required-but-lenient string: like [`opt_string`] with `""` for absent.
pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Loose::deserialize(d)?.into_string().unwrap_or_default())
}

/// Boolean from `true`/`false`, `0`/`1`, `"0"`/`"1"`, `"true"`, `null` (false).
pub fn bool_like<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Loose::deserialize(d)?.truthy())
}

/// An id that an element cannot do without: an integer, an integral float or
/// a numeric string. Anything else is an error, so the element is skipped.
pub fn id<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let v = Loose::deserialize(d)?;
    let n = match &v {
        Loose::F64(f) if f.fract() != 0.0 => None,
        Loose::Bool(_) => None,
        other => other.to_i64(),
    };
    n.ok_or_else(|| de::Error::custom(format_args!("expected a numeric id, got {v:?}")))
}

/// List of strings from an array (non-string items formatted, blanks and
/// nulls dropped), a single string (one item unless blank), an object (its
/// values), or `null`/`{}`/`[]` (empty).
pub fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    d.deserialize_any(StringListVisitor)
}

struct StringListVisitor;

impl<'de> Visitor<'de> for StringListVisitor {
    type Value = Vec<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of strings")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
        let mut out = Vec::new();
        while let Some(item) = seq.next_element::<Loose>()? {
            out.extend(item.into_string());
        }
        Ok(out)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<String>, A::Error> {
        let mut out = Vec::new();
        while let Some((_, item)) = map.next_entry::<IgnoredAny, Loose>()? {
            out.extend(item.into_string());
        }
        Ok(out)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<String>, E> {
        Ok(Loose::Str(v.to_string()).into_string().into_iter().collect())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Vec<String>, E> {
        Ok(Vec::new())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Vec<String>, E> {
        Ok(vec![v.to_string()])
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Vec<String>, E> {
        Ok(vec![v.to_string()])
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Vec<String>, E> {
        Ok(Loose::F64(v).into_string().into_iter().collect())
    }
    fn visit_unit<E: de::Error>(self) -> Result<Vec<String>, E> {
        Ok(Vec::new())
    }
    fn visit_none<E: de::Error>(self) -> Result<Vec<String>, E> {
        Ok(Vec::new())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Vec<String>, D::Error> {
        d.deserialize_any(StringListVisitor)
    }
}

/// A nested struct that falls back to `T::default()` when the value is not
/// an object of the right shape (`[]`, `null`, `""`, ...).
pub fn lenient<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned + Default,
{
    let v = serde_json::Value::deserialize(d)?;
    Ok(serde_json::from_value(v).unwrap_or_default())
}

/// Like [`lenient`] but `None` when the value is not a usable object.
pub fn lenient_opt<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let v = serde_json::Value::deserialize(d)?;
    if !v.is_object() {
        return Ok(None);
    }
    Ok(serde_json::from_value(v).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Default, Deserialize)]
    struct T {
        #[serde(default, deserialize_with = "opt_i64")]
        i: Option<i64>,
        #[serde(default, deserialize_with = "opt_f64")]
        f: Option<f64>,
        #[serde(default, deserialize_with = "opt_string")]
        s: Option<String>,
        #[serde(default, deserialize_with = "bool_like")]
        b: bool,
        #[serde(default, deserialize_with = "string_list")]
        l: Vec<String>,
    }

    fn t(json: &str) -> T {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn integers() {
        assert_eq!(t(r#"{"i":5}"#).i, Some(5));
        assert_eq!(t(r#"{"i":"5"}"#).i, Some(5));
        assert_eq!(t(r#"{"i":" 7 "}"#).i, Some(7));
        assert_eq!(t(r#"{"i":5.9}"#).i, Some(5));
        assert_eq!(t(r#"{"i":"1.5e3"}"#).i, Some(1500));
        assert_eq!(t(r#"{"i":""}"#).i, None);
        assert_eq!(t(r#"{"i":null}"#).i, None);
        assert_eq!(t(r#"{"i":"N/A"}"#).i, None);
        assert_eq!(t(r#"{"i":[1]}"#).i, None);
        assert_eq!(t(r#"{"i":{"a":1}}"#).i, None);
        assert_eq!(t(r#"{"i":1e300}"#).i, None);
        assert_eq!(t(r#"{"i":18446744073709551615}"#).i, None);
        assert_eq!(t("{}").i, None);
    }

    #[test]
    fn floats_strings_bools_lists() {
        assert_eq!(t(r#"{"f":"4.5"}"#).f, Some(4.5));
        assert_eq!(t(r#"{"f":4}"#).f, Some(4.0));
        assert_eq!(t(r#"{"f":""}"#).f, None);
        assert_eq!(t(r#"{"s":12}"#).s.as_deref(), Some("12"));
        assert_eq!(t(r#"{"s":"  "}"#).s, None);
        assert_eq!(t(r#"{"s":"x"}"#).s.as_deref(), Some("x"));
        for yes in [r#"{"b":1}"#, r#"{"b":"1"}"#, r#"{"b":true}"#, r#"{"b":"true"}"#] {
            assert!(t(yes).b, "{yes}");
        }
        for no in [r#"{"b":0}"#, r#"{"b":"0"}"#, r#"{"b":false}"#, r#"{"b":null}"#, r#"{"b":""}"#] {
            assert!(!t(no).b, "{no}");
        }
        assert_eq!(t(r#"{"l":["a",1,null,""]}"#).l, vec!["a", "1"]);
        assert_eq!(t(r#"{"l":"x"}"#).l, vec!["x"]);
        assert_eq!(t(r#"{"l":{"0":"a","1":"b"}}"#).l, vec!["a", "b"]);
        assert!(t(r#"{"l":null}"#).l.is_empty());
        assert!(t(r#"{"l":""}"#).l.is_empty());
    }

    #[derive(Debug, Deserialize)]
    struct WithId {
        #[serde(deserialize_with = "id")]
        id: i64,
    }

    #[test]
    fn ids() {
        let ok = |j: &str| serde_json::from_str::<WithId>(j).map(|w| w.id).ok();
        assert_eq!(ok(r#"{"id":3}"#), Some(3));
        assert_eq!(ok(r#"{"id":"3"}"#), Some(3));
        assert_eq!(ok(r#"{"id":3.0}"#), Some(3));
        assert_eq!(ok(r#"{"id":3.5}"#), None);
        assert_eq!(ok(r#"{"id":""}"#), None);
        assert_eq!(ok(r#"{"id":null}"#), None);
        assert_eq!(ok(r#"{"id":"abc"}"#), None);
        assert_eq!(ok(r#"{}"#), None);
    }
}
