//! RFC 3339 times; Go's zero time (`0001-01-01T00:00:00Z`) and `null` read as "unset".

/// `Option<DateTime<Utc>>` as RFC 3339 or null.
pub(crate) mod opt {
    use chrono::{DateTime, Datelike, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(
        v: &Option<DateTime<Utc>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(t) => s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        let raw = Option::<String>::deserialize(d)?;
        match raw.as_deref() {
            None | Some("") => Ok(None),
            Some(text) => {
                let t = DateTime::parse_from_rfc3339(text)
                    .map_err(|e| {
                        serde::de::Error::custom(format!("invalid RFC 3339 time `{text}`: {e}"))
                    })?
                    .with_timezone(&Utc);
                Ok(if t.year() <= 1 { None } else { Some(t) })
            }
        }
    }
}
