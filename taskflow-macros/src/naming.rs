//! Names shared by `#[step]` and `task_flow!`: param keys and argument ids.

/// The param key of a Rust argument name: lowerCamelCase (`sum_a` → `sumA`), like the reference framework's documents.
pub(crate) fn param_key(name: &str) -> String {
    let mut key = String::with_capacity(name.len());
    for part in name.split('_').filter(|part| !part.is_empty()) {
        if key.is_empty() {
            key.push_str(part);
        } else {
            let mut chars = part.chars();
            if let Some(first) = chars.next() {
                key.extend(first.to_uppercase());
                key.push_str(chars.as_str());
            }
        }
    }
    key
}

/// The id of an argument name in `HasArg<ID>`: 64-bit FNV-1a, computed identically by both macros.
pub(crate) fn arg_id(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The name of an identifier without its raw prefix (`r#type` → `type`).
pub(crate) fn unraw(ident: &syn::Ident) -> String {
    let name = ident.to_string();
    name.strip_prefix("r#").map(str::to_owned).unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::{arg_id, param_key};

    #[test]
    fn keys_are_lower_camel_case() {
        assert_eq!(param_key("sum_a"), "sumA");
        assert_eq!(param_key("greeting"), "greeting");
        assert_eq!(param_key("http_base_url"), "httpBaseUrl");
        assert_eq!(param_key("_unused"), "unused");
        assert_eq!(param_key("a__b_"), "aB");
        assert_eq!(param_key("v2_id"), "v2Id");
    }

    #[test]
    fn ids_differ_by_name() {
        assert_ne!(arg_id("sum_a"), arg_id("sum_b"));
        assert_eq!(arg_id(""), 0xcbf2_9ce4_8422_2325);
    }
}
