//! One price for an order of several parts: each part keeps its own costs
//! (material, machine time, post-processing, its quantity discount and the
//! margin), while the setup fee and the minimum order apply once per order,
//! as the price book says ("setup: once per order").

use serde::{Deserialize, Serialize};

use crate::{LineItem, PriceBook, Rounding, round_cents};

/// The label of the setup fee's line item, in a part's quote and an order's.
pub const SETUP_LINE: &str = "setup";
/// The label of the line that raises a sum to the minimum order.
pub const MINIMUM_ORDER_LINE: &str = "minimum order";

/// What an order's total takes from the price book. It is fixed when the
/// order is placed and kept with it, so the order is totalled under the
/// terms it was placed under, however long its parts take to price.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderTerms {
    pub price_book_version: String,
    pub currency: String,
    pub setup_fee: f64,
    pub minimum_order: f64,
    pub rounding: Rounding,
}

impl OrderTerms {
    pub fn of(book: &PriceBook) -> Self {
        Self {
            price_book_version: book.version.clone(),
            currency: book.currency.clone(),
            setup_fee: book.setup_fee,
            minimum_order: book.minimum_order,
            rounding: book.rounding,
        }
    }
}

/// An order's price: each part's own subtotal, then the lines charged once
/// per order, and the total.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderPrice {
    /// Per part, in the order given: its line items without the setup fee
    /// and the minimum order.
    pub part_subtotals: Vec<f64>,
    /// The setup fee, and the raise to the minimum order when the sum is
    /// below it.
    pub order_lines: Vec<LineItem>,
    /// The parts' subtotals plus the order's lines, rounded as the book
    /// says.
    pub total: f64,
}

/// Prices an order from its parts' line items, each as its own quote gave
/// them: a part's setup fee and minimum-order raise are dropped, and the
/// order's are charged once. For one part this is that part's own total.
pub fn price_order(parts: &[Vec<LineItem>], terms: &OrderTerms) -> OrderPrice {
    let part_subtotals: Vec<f64> = parts
        .iter()
        .map(|lines| {
            let own = lines.iter().filter(|l| l.label != SETUP_LINE && l.label != MINIMUM_ORDER_LINE);
            round_cents(own.map(|l| l.amount).sum())
        })
        .collect();
    let setup = round_cents(terms.setup_fee);
    let mut order_lines = vec![LineItem { label: SETUP_LINE.into(), basis: "once per order".into(), amount: setup }];
    let sum = part_subtotals.iter().sum::<f64>() + setup;
    if sum < terms.minimum_order {
        order_lines.push(LineItem {
            label: MINIMUM_ORDER_LINE.into(),
            basis: format!(
                "raised from {sum:.2} to the minimum order of {:.2} {}",
                terms.minimum_order, terms.currency
            ),
            amount: round_cents(terms.minimum_order - sum),
        });
    }
    let total = terms.rounding.apply(sum.max(terms.minimum_order));
    OrderPrice { part_subtotals, order_lines, total }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RoundingMode;

    fn line(label: &str, amount: f64) -> LineItem {
        LineItem { label: label.into(), basis: String::new(), amount }
    }

    fn terms(setup_fee: f64, minimum_order: f64) -> OrderTerms {
        OrderTerms {
            price_book_version: "v".into(),
            currency: "EUR".into(),
            setup_fee,
            minimum_order,
            rounding: Rounding { step: 0.05, mode: RoundingMode::Up },
        }
    }

    fn part(own: f64, setup: f64) -> Vec<LineItem> {
        vec![line("material", own / 2.0), line("machine time", own / 2.0), line(SETUP_LINE, setup)]
    }

    #[test]
    fn two_parts_pay_the_setup_fee_once() {
        let terms = terms(5.0, 0.0);
        let price = price_order(&[part(10.0, 5.0), part(20.0, 5.0)], &terms);
        assert_eq!(price.part_subtotals, vec![10.0, 20.0]);
        assert_eq!(
            price.order_lines,
            vec![line(SETUP_LINE, 5.0)]
                .into_iter()
                .map(|mut l| {
                    l.basis = "once per order".into();
                    l
                })
                .collect::<Vec<_>>()
        );
        assert_eq!(price.total, 35.0, "10 + 20 + one setup fee of 5, not two");
    }

    #[test]
    fn the_minimum_order_is_met_by_the_order_not_by_each_part() {
        let terms = terms(2.0, 15.0);
        // Each part alone was raised to 15; together they are 6 + 8 + 2 = 16.
        let small = |own: f64| {
            let mut lines = part(own, 2.0);
            lines.push(line(MINIMUM_ORDER_LINE, 15.0 - own - 2.0));
            lines
        };
        let price = price_order(&[small(6.0), small(8.0)], &terms);
        assert_eq!(price.total, 16.0);
        assert!(price.order_lines.iter().all(|l| l.label != MINIMUM_ORDER_LINE));
        // Two tiny parts together are still raised, once.
        let tiny = price_order(&[small(1.0), small(2.0)], &terms);
        assert_eq!(tiny.total, 15.0);
        let raise: Vec<_> = tiny.order_lines.iter().filter(|l| l.label == MINIMUM_ORDER_LINE).collect();
        assert_eq!(raise.len(), 1);
        assert_eq!(raise[0].amount, 10.0, "raised from 1 + 2 + 2");
    }

    #[test]
    fn the_total_is_rounded_as_the_book_says() {
        let price = price_order(&[part(10.01, 0.0)], &terms(0.0, 0.0));
        assert_eq!(price.total, 10.05, "up to the next 0.05");
    }

    #[test]
    fn terms_survive_being_stored_as_json() {
        let terms = terms(5.0, 15.0);
        let text = serde_json::to_string(&terms).unwrap();
        assert_eq!(serde_json::from_str::<OrderTerms>(&text).unwrap(), terms);
    }
}
