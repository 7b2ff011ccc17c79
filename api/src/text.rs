//! Text fields from clients, checked the same way for every database: a
//! field with NUL or another control character (bidirectional overrides
//! included), or longer than it may be, is
//! refused with the field's name. PostgreSQL refuses NUL with an error (a 500
//! before this check) while SQLite stores it as sent; both now see only text
//! that passed here.

/// The longest id a client may send: model, order, job, event, external ids.
pub(crate) const MAX_ID_CHARS: usize = 200;
/// The longest free-text name: a customer, a material, a colour.
pub(crate) const MAX_NAME_CHARS: usize = 200;
/// The longest `Idempotency-Key` accepted.
pub(crate) const MAX_IDEMPOTENCY_KEY: usize = 200;
/// The most items one page of a list may ask for.
pub(crate) const MAX_PAGE: usize = 500;

/// Why `value` cannot be the `field`, if it cannot.
pub(crate) fn refusal(field: &str, value: &str, max_chars: usize) -> Option<String> {
    if let Some(bad) = value.chars().find(|&c| c.is_control() || is_bidi_control(c)) {
        return Some(format!("`{field}` holds the control character U+{:04X}; send printable text", u32::from(bad)));
    }
    let chars = value.chars().count();
    if chars > max_chars {
        return Some(format!("`{field}` is {chars} characters long; the limit is {max_chars}"));
    }
    None
}

/// The characters that reorder the text around them (embeddings, overrides,
/// isolates): a name holding them can show on an operator's screen as
/// something other than what it is.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// The first refusal among `(field, value, max_chars)`; absent values pass.
pub(crate) fn first_refusal(fields: &[(&str, Option<&str>, usize)]) -> Option<String> {
    fields.iter().find_map(|&(field, value, max_chars)| value.and_then(|value| refusal(field, value, max_chars)))
}

/// A material or colour name as the price book spells them: trimmed and in
/// lower case, so `" PLA "` is `pla`.
pub(crate) fn normalised_name(name: &str) -> String {
    name.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_and_long_values_are_refused_with_the_field_name() {
        assert_eq!(refusal("customer", "Bob", 10), None);
        let nul = refusal("customer", "Bo\0b", 10).unwrap();
        assert!(nul.contains("`customer`") && nul.contains("U+0000"), "{nul}");
        assert!(refusal("customer", "a\u{1b}[31m", 10).unwrap().contains("U+001B"));
        assert!(refusal("customer", "\u{202E}live", 10).unwrap().contains("U+202E"), "a right-to-left override");
        assert!(refusal("customer", "a\u{2067}b", 10).unwrap().contains("U+2067"), "an isolate");
        assert_eq!(refusal("customer", "שלום Bob", 10), None, "right-to-left text itself is fine");
        let long = refusal("customer", &"é".repeat(11), 10).unwrap();
        assert!(long.contains("11 characters") && long.contains("10"), "{long}");
        assert_eq!(refusal("customer", &"é".repeat(10), 10), None, "characters, not bytes");
        assert_eq!(normalised_name("  PLA "), "pla");
    }
}
