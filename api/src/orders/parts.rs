//! Orders of several parts: each part is priced by a job of its own (in
//! parallel, through the same queue as any job), and the order is priced
//! once all its parts are, with the setup fee and the minimum order charged
//! once (`calculator::order`). A part that fails fails the order; a retry
//! prices the failed parts again, and a replayed dead letter its own part.
//!
//! The SQL here runs inside the transactions of `orders::store` (placing an
//! order) and `store::settle` (a job's end), so a part and its order never
//! disagree.

use calculator::LineItem;
use calculator::order::{OrderTerms, price_order};
use serde::Deserialize;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::list_facts::{QuoteFacts, version_of_books};
use super::status::{OrderEvent, OrderStatus};
use super::store::{
    BindListFacts, Created, Moving, NewOrder, NewPricing, Pricing, SET_LIST_FACTS, Transitioned, fixed_move,
    insert_new_order, insert_order_event, set_status,
};
use crate::store::column::{Float, Text};
use crate::store::{JobRow, Store, StoreError};

/// A part of a new order, with its pricing.
#[derive(Debug, Clone)]
pub struct NewPart {
    pub model_id: String,
    pub material: String,
    pub colour: Option<String>,
    pub quantity: i64,
    pub pricing: Pricing,
}

/// A part as stored; `position` counts from 1, in the order given.
#[derive(Debug, Clone, PartialEq)]
pub struct PartRow {
    pub position: i64,
    pub model_id: String,
    pub material: String,
    pub colour: Option<String>,
    pub quantity: i64,
    /// The job that prices it now (a retry or a replay replaces it).
    pub job_id: Option<String>,
    /// Its own quote document, JSON, once priced.
    pub quote: Option<String>,
    /// Its own total, as if it were ordered alone.
    pub total: Option<f64>,
    pub failure: Option<String>,
}

const PART_COLUMNS: &str = "position, model_id, material, colour, quantity, job_id, quote, total, failure";

impl Store {
    /// Creates an order of several parts, each with its pricing, in one
    /// transaction; `order`'s own model, material, colour and quantity are
    /// its first part's. Parts answered from the cache are priced at once,
    /// and the order too when all are.
    pub async fn create_order_of_parts(
        &self,
        order: &NewOrder,
        terms: &OrderTerms,
        parts: Vec<NewPart>,
    ) -> Result<Created, StoreError> {
        let terms = serde_json::to_string(terms).expect("order terms always serialize");
        let part_count = i64::try_from(parts.len()).unwrap_or(i64::MAX);
        let mut tx = self.begin_write().await?;
        if !insert_new_order(&mut tx, order, part_count, Some(&terms)).await? {
            tx.rollback().await?;
            return self.existing_order(order).await;
        }
        let (order_id, now) = (order.order_id.as_str(), order.now_ms);
        set_status(&mut tx, order_id, OrderStatus::INITIAL, OrderEvent::PricingQueued, now).await?;
        insert_parts(&mut tx, order_id, parts, now).await?;
        // Every part may have come from the cache.
        settle_order_of_parts(&mut tx, order_id, now).await?;
        tx.commit().await?;
        let row = self.order(order_id).await?.ok_or(StoreError::Database(sqlx::Error::RowNotFound))?;
        Ok(Created::New(row))
    }

    /// The parts of an order, in order; none for an order of one part.
    pub async fn order_parts(&self, order_id: &str) -> Result<Vec<PartRow>, StoreError> {
        parts_of(&self.pool, order_id).await
    }

    /// Prices an order of parts again by `event`, under `terms`: a retry
    /// (`PRICING_FAILED`) prices its failed parts again, a reprice
    /// (`PRICED`, not yet approved) every part, its old quote kept in
    /// `order_quotes`. In one transaction the order moves to `PRICING` and
    /// each part priced again gets its job from `jobs` (by position), queued
    /// through the outbox; the ids of the jobs queued come back with the
    /// move. Conditional on the status and version read, as every move, so
    /// two retries at once queue the jobs once.
    pub async fn price_parts_again(
        &self,
        order_id: &str,
        event: OrderEvent,
        terms: &OrderTerms,
        jobs: &[(i64, JobRow)],
        actor: &str,
        now_ms: i64,
    ) -> Result<(Transitioned, Vec<String>), StoreError> {
        let terms_version = terms.price_book_version.as_str();
        let terms = serde_json::to_string(terms).expect("order terms always serialize");
        let mut started =
            match self.start_move(order_id, event, actor, now_ms, NewPricing::Parts { terms: &terms }).await? {
                Moving::Started(started) => started,
                Moving::Ended(answer) => return Ok((answer, Vec::new())),
            };
        // A reprice prices every part again; a retry the failed parts, and
        // those priced under another book than the order's terms now name,
        // so one quote never mixes two books.
        let every_part = event == OrderEvent::Reprice;
        let stale = |p: &PartRow| {
            let version =
                p.quote.as_deref().and_then(|q| serde_json::from_str::<PartQuote>(q).ok()?.price_book_version);
            version.is_some_and(|v| v != terms_version)
        };
        let mut queued = Vec::new();
        let tx = &mut started.tx;
        for part in parts_in(tx, order_id).await?.into_iter().filter(|p| every_part || p.failure.is_some() || stale(p))
        {
            let Some((_, job)) = jobs.iter().find(|(position, _)| *position == part.position) else {
                // The caller built a job for every part; one missing is a bug.
                return Err(corrupt(format!("no new job for part {} of order {order_id}", part.position)));
            };
            sqlx::query(
                "UPDATE order_parts SET job_id = $3, failure = NULL, quote = NULL, total = NULL \
                 WHERE order_id = $1 AND position = $2",
            )
            .bind(order_id)
            .bind(part.position)
            .bind(&job.job_id)
            .execute(&mut **tx)
            .await?;
            crate::store::insert_job_tx(tx, job, &job.message()).await?;
            queued.push(job.job_id.clone());
        }
        Ok((self.finish_move(started, actor, now_ms).await?, queued))
    }
}

/// Writes a new order's parts and their jobs (queued, or answered from the
/// quote cache), inside the order's creating transaction.
async fn insert_parts(
    tx: &mut Transaction<'_, Any>,
    order_id: &str,
    parts: Vec<NewPart>,
    at: i64,
) -> Result<(), StoreError> {
    for (position, part) in (1_i64..).zip(parts) {
        let (job_id, answered) = match part.pricing {
            Pricing::Queue { job, payload } => {
                crate::store::insert_job_tx(tx, &job, &payload).await?;
                (job.job_id, None)
            }
            Pricing::Answered { job, quote, quote_key, total, .. } => {
                crate::store::insert_answered_job_tx(tx, &job, &quote, &quote_key).await?;
                (job.job_id, Some((quote, total)))
            }
        };
        sqlx::query(
            "INSERT INTO order_parts (order_id, position, model_id, material, colour, quantity, job_id, quote, total) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(order_id)
        .bind(position)
        .bind(&part.model_id)
        .bind(&part.material)
        .bind(&part.colour)
        .bind(part.quantity)
        .bind(&job_id)
        .bind(answered.as_ref().map(|(quote, _)| quote.as_str()))
        .bind(Float(answered.as_ref().map(|(_, total)| *total)))
        .execute(&mut **tx)
        .await?;
        if let Some((quote, _)) = &answered {
            // After the part names its job, so the event lists the order.
            crate::events::priced_from_cache(tx, &job_id, quote, at).await?;
        }
    }
    Ok(())
}

/// After a pricing job ends, settles the parts it prices, then their
/// orders, inside the job's transaction.
pub(super) async fn settle_parts_of_job(
    tx: &mut Transaction<'_, Any>,
    job_id: &str,
    outcome: Result<(&str, f64, &str), &str>,
    at: i64,
) -> Result<(), StoreError> {
    let rows = match outcome {
        Ok((quote, total, _)) => {
            sqlx::query(
                "UPDATE order_parts SET quote = $2, total = $3, failure = NULL WHERE job_id = $1 RETURNING order_id",
            )
            .bind(job_id)
            .bind(quote)
            .bind(total)
            .fetch_all(&mut **tx)
            .await?
        }
        Err(failure) => {
            sqlx::query("UPDATE order_parts SET failure = $2 WHERE job_id = $1 AND quote IS NULL RETURNING order_id")
                .bind(job_id)
                .bind(failure)
                .fetch_all(&mut **tx)
                .await?
        }
    };
    for row in rows {
        let order_id: String = row.try_get("order_id")?;
        settle_order_of_parts(tx, &order_id, at).await?;
    }
    Ok(())
}

/// Moves an order of parts that is `PRICING` on, as its parts say: to
/// `PRICING_FAILED` when a part failed (naming it), to `PRICED` with one
/// quote when every part is priced, or nowhere while parts are still
/// pricing.
async fn settle_order_of_parts(tx: &mut Transaction<'_, Any>, order_id: &str, at: i64) -> Result<(), StoreError> {
    let from = OrderStatus::Pricing;
    // The order's row is locked first. Two parts settling at once run in
    // parallel on PostgreSQL: unserialised, each would read the other's part
    // as still pricing, and the order would never be priced. Locked, the
    // second reads the parts after the first has committed.
    sqlx::query("UPDATE orders SET updated_at_ms = updated_at_ms WHERE order_id = $1")
        .bind(order_id)
        .execute(&mut **tx)
        .await?;
    let Some(order) = sqlx::query("SELECT order_terms FROM orders WHERE order_id = $1 AND status = $2")
        .bind(order_id)
        .bind(Text(from))
        .fetch_optional(&mut **tx)
        .await?
    else {
        // Cancelled, or already failed by another part: nothing to settle.
        return Ok(());
    };
    let parts = parts_in(tx, order_id).await?;
    if let Some(failed) = parts.iter().find(|p| p.failure.is_some()) {
        let to = fixed_move(from, OrderEvent::PricingFailed);
        let failure = format!(
            "part {} (model {}): {}",
            failed.position,
            failed.model_id,
            failed.failure.as_deref().unwrap_or_default()
        );
        sqlx::query(
            "UPDATE orders SET status = $2, failure = $3, version = version + 1, updated_at_ms = $4 \
             WHERE order_id = $1 AND status = $5",
        )
        .bind(order_id)
        .bind(Text(to))
        .bind(failure)
        .bind(at)
        .bind(Text(from))
        .execute(&mut **tx)
        .await?;
        return insert_order_event(tx, order_id, Some(from), to, "pricing", at).await;
    }
    if parts.iter().any(|p| p.quote.is_none()) {
        return Ok(());
    }
    let terms: Option<String> = order.try_get("order_terms")?;
    let terms: OrderTerms = terms
        .as_deref()
        .and_then(|t| serde_json::from_str(t).ok())
        .ok_or_else(|| corrupt(format!("order {order_id} has parts but no readable terms")))?;
    let document = order_quote(&terms, &parts)?;
    let quote = document.to_string();
    let facts = QuoteFacts::read(&quote);
    let to = fixed_move(from, OrderEvent::Priced);
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE orders SET status = $12, quote = $2, total = $3, currency = $4, version = version + 1, \
                updated_at_ms = $5, {SET_LIST_FACTS} \
         WHERE order_id = $1 AND status = $13"
    )))
    .bind(order_id)
    .bind(&quote)
    .bind(Float(document["total"].as_f64()))
    .bind(&terms.currency)
    .bind(at)
    .bind_list_facts(&facts, at)
    .bind(Text(to))
    .bind(Text(from))
    .execute(&mut **tx)
    .await?;
    insert_order_event(tx, order_id, Some(from), to, "pricing", at).await
}

/// Hands the parts that failed with `dead_job_id` to `new_job_id` (a replay
/// of its dead letter), inside the replay's transaction. Their order goes
/// back to `PRICING` when no other part of it is still failed.
pub(super) async fn replay_parts_of_job(
    tx: &mut Transaction<'_, Any>,
    dead_job_id: &str,
    new_job_id: &str,
    at: i64,
) -> Result<(), StoreError> {
    let rows = sqlx::query(
        "UPDATE order_parts SET job_id = $2, failure = NULL, quote = NULL, total = NULL \
         WHERE job_id = $1 AND quote IS NULL RETURNING order_id",
    )
    .bind(dead_job_id)
    .bind(new_job_id)
    .fetch_all(&mut **tx)
    .await?;
    let from = OrderStatus::PricingFailed;
    for row in rows {
        let order_id: String = row.try_get("order_id")?;
        if parts_in(tx, &order_id).await?.iter().any(|p| p.failure.is_some()) {
            continue;
        }
        let to = fixed_move(from, OrderEvent::RetryPricing);
        let moved = sqlx::query(
            "UPDATE orders SET status = $2, failure = NULL, version = version + 1, updated_at_ms = $3 \
             WHERE order_id = $1 AND status = $4",
        )
        .bind(&order_id)
        .bind(Text(to))
        .bind(at)
        .bind(Text(from))
        .execute(&mut **tx)
        .await?;
        if moved.rows_affected() == 1 {
            insert_order_event(tx, &order_id, Some(from), to, "replay", at).await?;
        }
    }
    Ok(())
}

async fn parts_in(tx: &mut Transaction<'_, Any>, order_id: &str) -> Result<Vec<PartRow>, StoreError> {
    parts_of(&mut **tx, order_id).await
}

/// An order's parts, in order, read with `executor` (the pool, or a
/// transaction that must see its own writes).
async fn parts_of<'e>(
    executor: impl sqlx::Executor<'e, Database = Any>,
    order_id: &str,
) -> Result<Vec<PartRow>, StoreError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {PART_COLUMNS} FROM order_parts WHERE order_id = $1 ORDER BY position"
    )))
    .bind(order_id)
    .fetch_all(executor)
    .await?;
    rows.iter().map(part_from_row).collect::<Result<_, _>>().map_err(StoreError::Database)
}

fn part_from_row(r: &AnyRow) -> Result<PartRow, sqlx::Error> {
    Ok(PartRow {
        position: r.try_get("position")?,
        model_id: r.try_get("model_id")?,
        material: r.try_get("material")?,
        colour: r.try_get("colour")?,
        quantity: r.try_get("quantity")?,
        job_id: r.try_get("job_id")?,
        quote: r.try_get("quote")?,
        total: r.try_get("total")?,
        failure: r.try_get("failure")?,
    })
}

fn corrupt(message: String) -> StoreError {
    StoreError::Database(sqlx::Error::Decode(message.into()))
}

/// What an order's quote reads of each part's own quote.
#[derive(Debug, Deserialize)]
struct PartQuote {
    line_items: Vec<LineDoc>,
    total: f64,
    #[serde(default)]
    machine_time_s: Option<f64>,
    #[serde(default)]
    machine: Option<MachineDoc>,
    #[serde(default)]
    valid_days: Option<u32>,
    #[serde(default)]
    price_book_version: Option<String>,
}

#[derive(Debug, Deserialize)]
struct LineDoc {
    label: String,
    basis: String,
    amount: f64,
}

#[derive(Debug, Deserialize)]
struct MachineDoc {
    name: String,
}

/// The order's quote: a line per part (its own costs), the lines charged
/// once per order, and one total, under the order's terms. It keeps what
/// the list reads of a quote (`list_facts`): the machine when every part
/// prints on the same one, the machine time of the whole order, and the
/// shortest validity of its parts.
fn order_quote(terms: &OrderTerms, parts: &[PartRow]) -> Result<serde_json::Value, StoreError> {
    let mut quotes = Vec::with_capacity(parts.len());
    for part in parts {
        let text = part.quote.as_deref().unwrap_or_default();
        let quote: PartQuote = serde_json::from_str(text)
            .map_err(|e| corrupt(format!("the quote of part {} cannot be read: {e}", part.position)))?;
        quotes.push(quote);
    }
    let lines: Vec<Vec<LineItem>> = quotes
        .iter()
        .map(|q| {
            q.line_items
                .iter()
                .map(|l| LineItem { label: l.label.clone(), basis: l.basis.clone(), amount: l.amount })
                .collect()
        })
        .collect();
    let price = price_order(&lines, terms);
    let mut line_items = Vec::with_capacity(parts.len() + price.order_lines.len());
    let mut part_docs = Vec::with_capacity(parts.len());
    for ((part, quote), subtotal) in parts.iter().zip(&quotes).zip(&price.part_subtotals) {
        let colour = part.colour.as_deref().map(|c| format!(", {c}")).unwrap_or_default();
        line_items.push(serde_json::json!({
            "label": format!("part {}", part.position),
            "basis": format!("{} x {}{colour}, model {}", part.quantity, part.material, part.model_id),
            "amount": subtotal,
        }));
        part_docs.push(serde_json::json!({
            "position": part.position,
            "model_id": part.model_id,
            "material": part.material,
            "colour": part.colour,
            "quantity": part.quantity,
            "job_id": part.job_id,
            "subtotal": subtotal,
            "total_alone": quote.total,
            "machine": quote.machine.as_ref().map(|m| m.name.as_str()),
            "price_book_version": quote.price_book_version,
        }));
    }
    for line in &price.order_lines {
        line_items.push(serde_json::json!({ "label": line.label, "basis": line.basis, "amount": line.amount }));
    }
    let machines: Vec<&str> = quotes.iter().filter_map(|q| q.machine.as_ref().map(|m| m.name.as_str())).collect();
    let one_machine =
        machines.first().filter(|first| machines.len() == quotes.len() && machines.iter().all(|m| m == *first));
    let machine_time_s: Option<f64> = quotes.iter().map(|q| q.machine_time_s).sum();
    // One book, or say the books were mixed (a book changed while the parts
    // were pricing, or workers of two books priced them): a version other
    // than the current one, so the reprice of orders under other books
    // takes it up.
    let mut books: Vec<&str> = quotes.iter().filter_map(|q| q.price_book_version.as_deref()).collect();
    books.push(&terms.price_book_version);
    books.sort_unstable();
    books.dedup();
    let price_book_version = version_of_books(&books);
    Ok(serde_json::json!({
        "parts": part_docs,
        "line_items": line_items,
        "total": price.total,
        "currency": terms.currency,
        "price_book_version": price_book_version,
        "valid_days": quotes.iter().filter_map(|q| q.valid_days).min(),
        "machine": one_machine.map(|name| serde_json::json!({ "name": name })),
        "print_time_s": machine_time_s,
    }))
}
