//! The operators' list filters (material, machine, assignee).
//!
//! A filtered page is read from the same source as an unfiltered one (the
//! cache, or the database while it is cold), a batch at a time, keeping the
//! rows that match, until the page is full or `max_scan` rows were looked
//! at. Then it answers with what it found and a cursor to go on from, so a
//! rare filter costs a bounded amount of work per request, never a scan of
//! the whole table.

use super::cache::OrderSummary;
use super::store::Cursor;

/// The operators' list filters; each one given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFacets {
    pub material: Option<String>,
    pub machine: Option<String>,
    pub assignee: Option<String>,
}

impl ListFacets {
    pub fn is_empty(&self) -> bool {
        self.material.is_none() && self.machine.is_none() && self.assignee.is_none()
    }

    pub fn matches(&self, order: &OrderSummary) -> bool {
        let same = |wanted: &Option<String>, held: Option<&str>| wanted.as_deref().is_none_or(|w| Some(w) == held);
        same(&self.material, Some(order.material.as_str()))
            && same(&self.machine, order.machine.as_deref())
            && same(&self.assignee, order.assignee.as_deref())
    }
}

/// A filtered page and where to go on from: the last row returned when the
/// page is full, the last row looked at when the scan bound was reached,
/// none when the source has no more rows.
#[derive(Debug, Clone, PartialEq)]
pub struct FilteredPage {
    pub orders: Vec<OrderSummary>,
    pub next: Option<Cursor>,
}

fn cursor_of(order: &OrderSummary) -> Cursor {
    Cursor { created_at_ms: order.created_at_ms, order_id: order.order_id.clone() }
}

/// Reads batches through `fetch(cursor, batch)` (newest first, after the
/// cursor) and keeps what matches `facets`, until `limit` rows are found,
/// `max_scan` rows were looked at, or the source runs out.
pub async fn filtered_page<E, F, Fut>(
    facets: &ListFacets,
    start: Option<Cursor>,
    limit: usize,
    max_scan: usize,
    batch: usize,
    mut fetch: F,
) -> Result<FilteredPage, E>
where
    F: FnMut(Option<Cursor>, usize) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<OrderSummary>, E>>,
{
    let mut orders = Vec::with_capacity(limit);
    let mut cursor = start;
    let mut scanned = 0;
    loop {
        // Never read past the bound: the last batch is only what it leaves.
        let wanted = batch.min(max_scan.saturating_sub(scanned)).max(1);
        let rows = fetch(cursor.clone(), wanted).await?;
        let exhausted = rows.len() < wanted;
        for row in rows {
            scanned += 1;
            cursor = Some(cursor_of(&row));
            if facets.matches(&row) {
                orders.push(row);
                if orders.len() == limit {
                    return Ok(FilteredPage { orders, next: cursor });
                }
            }
        }
        if exhausted {
            return Ok(FilteredPage { orders, next: None });
        }
        if scanned >= max_scan {
            return Ok(FilteredPage { orders, next: cursor });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orders::status::OrderStatus;

    fn order(i: i64, material: &str, machine: Option<&str>) -> OrderSummary {
        OrderSummary {
            order_id: format!("o{i:03}"),
            source: "api".into(),
            seller: "s".into(),
            customer: None,
            model_id: format!("m{i:03}"),
            material: material.into(),
            colour: None,
            quantity: 1,
            status: OrderStatus::ManufacturingApproved,
            total: Some(1.0),
            currency: Some("EUR".into()),
            assignee: None,
            created_at_ms: 1000 - i,
            updated_at_ms: 1000 - i,
            version: 4,
            machine: machine.map(Into::into),
            size_mm: None,
            print_time_s: None,
            part_count: 1,
        }
    }

    /// 100 orders newest first; every tenth is PETG on the big machine.
    fn source() -> Vec<OrderSummary> {
        (0..100)
            .map(|i| if i % 10 == 3 { order(i, "petg", Some("big")) } else { order(i, "pla", Some("mk4")) })
            .collect()
    }

    async fn page(facets: &ListFacets, start: Option<Cursor>, limit: usize, max_scan: usize) -> FilteredPage {
        let all = source();
        filtered_page::<(), _, _>(facets, start, limit, max_scan, 7, |cursor, batch| {
            let from = match cursor {
                None => 0,
                Some(c) => all.iter().position(|o| o.order_id == c.order_id).unwrap() + 1,
            };
            let rows = all[from.min(all.len())..].iter().take(batch).cloned().collect();
            async move { Ok(rows) }
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn a_filtered_page_holds_only_matches_in_order_and_resumes_where_it_stopped() {
        let petg = ListFacets { material: Some("petg".into()), ..ListFacets::default() };
        let first = page(&petg, None, 3, 1000).await;
        let ids: Vec<_> = first.orders.iter().map(|o| o.order_id.as_str()).collect();
        assert_eq!(ids, ["o003", "o013", "o023"]);
        assert_eq!(first.next.as_ref().map(|c| c.order_id.as_str()), Some("o023"));
        let rest = page(&petg, first.next, 100, 1000).await;
        assert_eq!(rest.orders.len(), 7);
        assert_eq!(rest.next, None, "the source ran out");
        let by_machine = ListFacets { machine: Some("big".into()), material: Some("petg".into()), assignee: None };
        assert_eq!(page(&by_machine, None, 100, 1000).await.orders.len(), 10);
        let nothing = ListFacets { material: Some("pla".into()), machine: Some("big".into()), assignee: None };
        assert!(page(&nothing, None, 10, 1000).await.orders.is_empty());
    }

    #[tokio::test]
    async fn a_rare_filter_stops_at_the_scan_bound_with_a_cursor_to_go_on() {
        let petg = ListFacets { material: Some("petg".into()), ..ListFacets::default() };
        let bounded = page(&petg, None, 10, 20).await;
        assert!(bounded.orders.len() < 10);
        let next = bounded.next.clone().expect("a cursor to go on from");
        // It looked at exactly 20 rows (batches of 7, the last one cut to
        // what the bound leaves), not all 100.
        let looked_at = source().iter().position(|o| o.order_id == next.order_id).unwrap() + 1;
        assert_eq!(looked_at, 20);
        let rest = page(&petg, Some(next), 10, 1000).await;
        assert_eq!(bounded.orders.len() + rest.orders.len(), 10, "nothing is skipped or repeated");
    }
}
