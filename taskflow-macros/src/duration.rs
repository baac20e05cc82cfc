//! Duration literals of the DSL (`"30s"`, `"5m"`, `"1h30m"`), checked at expansion time.

use syn::LitStr;

/// Units, longest suffix first, with their length in milliseconds.
const UNITS: &[(&str, u64)] = &[
    ("ms", 1),
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
];

/// The whole seconds of a duration literal; an error at the literal when it is malformed, zero or not whole.
pub(crate) fn seconds(lit: &LitStr) -> syn::Result<u32> {
    let text = lit.value();
    let fail = |message: String| syn::Error::new(lit.span(), message);
    let millis = parse_millis(&text).ok_or_else(|| {
        fail(format!(
            "invalid duration {text:?}: expected numbers with units (`d`, `h`, `m`, `s`, `ms`), such as \"30s\", \
             \"5m\" or \"1h30m\""
        ))
    })?;
    if millis == 0 {
        return Err(fail(format!(
            "duration {text:?} is zero: leave the option out instead"
        )));
    }
    if millis % 1_000 != 0 {
        return Err(fail(format!(
            "duration {text:?} is not a whole number of seconds: task documents store whole seconds"
        )));
    }
    u32::try_from(millis / 1_000).map_err(|_| fail(format!("duration {text:?} is too long")))
}

/// Milliseconds of `text`, or `None` when it does not parse or overflows.
fn parse_millis(text: &str) -> Option<u64> {
    let mut rest = text;
    let mut total: u64 = 0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return None;
        }
        let number: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let &(unit, millis) = UNITS.iter().find(|(unit, _)| rest.starts_with(unit))?;
        rest = &rest[unit.len()..];
        total = total.checked_add(number.checked_mul(millis)?)?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::seconds;

    fn parse(text: &str) -> Result<u32, String> {
        seconds(&syn::LitStr::new(text, proc_macro2::Span::call_site())).map_err(|e| e.to_string())
    }

    #[test]
    fn parses_units_and_sums() {
        assert_eq!(parse("10s"), Ok(10));
        assert_eq!(parse("5m"), Ok(300));
        assert_eq!(parse("1h30m"), Ok(5_400));
        assert_eq!(parse("1d"), Ok(86_400));
        assert_eq!(parse("2000ms"), Ok(2));
    }

    #[test]
    fn rejects_bad_zero_and_sub_second() {
        assert!(parse("").unwrap_err().starts_with("invalid duration"));
        assert!(parse("5").unwrap_err().starts_with("invalid duration"));
        assert!(parse("5 m").unwrap_err().starts_with("invalid duration"));
        assert!(parse("m5").unwrap_err().starts_with("invalid duration"));
        assert!(parse("1w").unwrap_err().starts_with("invalid duration"));
        assert!(parse("0s").unwrap_err().contains("is zero"));
        assert!(
            parse("1500ms")
                .unwrap_err()
                .contains("whole number of seconds")
        );
        assert!(
            parse("99999999999999999999s")
                .unwrap_err()
                .starts_with("invalid duration")
        );
        assert!(parse("200000d").unwrap_err().contains("too long"));
    }
}
