//! Payloads are JSON values; the reference stores them as JSON *strings* (`"{}"`), which are accepted too.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// The default payload: an empty JSON object.
pub(crate) fn empty() -> Value {
    Value::Object(Default::default())
}

/// Accepts a JSON value, or a string holding JSON (reference documents), or null (→ `{}`).
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
    let value = Option::<Value>::deserialize(d)?;
    Ok(match value {
        None | Some(Value::Null) => empty(),
        Some(Value::String(s)) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
        Some(other) => other,
    })
}
