//! What the operators' list shows of an order's quote: its machine, size and
//! print time. They are read once, when the quote is stored, into columns of
//! their own, so the list's query never reads the quote document.
//!
//! A leaf: it imports no sibling module.

use serde::Deserialize;

/// The few facts of a quote document the list shows.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct QuoteFacts {
    #[serde(default)]
    machine: Option<MachineName>,
    #[serde(default)]
    print_time_s: Option<f64>,
    #[serde(default)]
    analysis: Option<Analysis>,
    /// How long the price holds, days (older documents have none).
    #[serde(default)]
    valid_days: Option<u32>,
    /// The price book (or books) the quote was priced under.
    #[serde(default)]
    price_book_version: Option<String>,
}

/// How an order's quote names its book when its parts were priced under
/// more than one (a book changed while they were pricing): no book has
/// such a version, so a reprice of orders under other books takes it up.
const MIXED_BOOKS: &str = "mixed: ";

/// The book version of a quote whose parts were priced under `books`
/// (sorted, without repeats): the book itself when there is one.
pub fn version_of_books(books: &[&str]) -> String {
    match books {
        [one] => (*one).to_string(),
        many => format!("{MIXED_BOOKS}{}", many.join(", ")),
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
struct MachineName {
    name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
struct Analysis {
    bounding_box: Option<BoundingBox>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
struct BoundingBox {
    size: [f64; 3],
}

impl QuoteFacts {
    /// The facts of a stored quote; nothing for one that does not read.
    pub fn read(quote: &str) -> Self {
        serde_json::from_str(quote).unwrap_or_default()
    }

    /// When a price given at `priced_at_ms` stops holding.
    pub fn valid_until_ms(&self, priced_at_ms: i64) -> Option<i64> {
        self.valid_days.map(|days| priced_at_ms.saturating_add(i64::from(days) * 86_400_000))
    }

    pub fn machine(&self) -> Option<String> {
        self.machine.as_ref().map(|m| m.name.clone())
    }

    pub fn size_mm(&self) -> Option<[f64; 3]> {
        self.analysis.as_ref().and_then(|a| a.bounding_box.as_ref()).map(|b| b.size)
    }

    pub fn print_time_s(&self) -> Option<f64> {
        self.print_time_s
    }

    /// Whether the quote's parts were priced under different books: such a
    /// price is no book's, and is not approved until it is priced again.
    pub fn mixes_books(&self) -> bool {
        self.price_book_version.as_deref().is_some_and(|v| v.starts_with(MIXED_BOOKS))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_reads_machine_size_and_time_from_a_quote_and_nothing_from_junk() {
        let quote = r#"{"total": 3.5, "print_time_s": 5400.5, "machine": {"name": "mk4", "hourly_rate": 2},
                        "analysis": {"bounding_box": {"min": [0,0,0], "max": [20,30,40], "size": [20, 30, 40]}}}"#;
        let facts = QuoteFacts::read(quote);
        assert_eq!(facts.machine().as_deref(), Some("mk4"));
        assert_eq!(facts.size_mm(), Some([20.0, 30.0, 40.0]));
        assert_eq!(facts.print_time_s(), Some(5400.5));
        assert_eq!(QuoteFacts::read("not json"), QuoteFacts::default());
    }

    #[test]
    fn a_quote_of_one_book_does_not_mix_books_and_one_of_two_does() {
        let read = |books: &[&str]| {
            QuoteFacts::read(&serde_json::json!({"price_book_version": version_of_books(books)}).to_string())
        };
        assert_eq!(version_of_books(&["2026-11"]), "2026-11");
        assert!(!read(&["2026-11"]).mixes_books());
        assert!(read(&["2026-10", "2026-11"]).mixes_books());
        assert!(!QuoteFacts::read("{}").mixes_books());
    }
}
