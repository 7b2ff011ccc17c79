//! The orders' SQL: creating an order with its pricing job in one
//! transaction, moving it through its statuses with conditional updates,
//! applying CRM events once, and counting everything for the accounts.
//!
//! Every change writes a row to `order_events` in the same transaction, and
//! bumps the order's `version`: the cache applies a change only if its
//! version is newer than what it holds.

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::list_facts::QuoteFacts;
use super::status::{self, IllegalTransition, OrderEvent, OrderStatus};
use crate::store::column::{Float, Text};
use crate::store::{JobRow, Store, StoreError};

/// How many times an optimistic update of an order is tried before it is
/// reported as contended.
pub(super) const OPTIMISTIC_ATTEMPTS: u32 = 5;

/// Every order's pricing jobs: its own (an order of one part), or each
/// part's.
const ORDER_JOBS: &str = "SELECT order_id, job_id FROM orders WHERE job_id IS NOT NULL \
                          UNION ALL SELECT order_id, job_id FROM order_parts WHERE job_id IS NOT NULL";

/// Orders still PRICING although every job pricing them has ended (a lost
/// result), with `more` conditions on the order `o`.
fn stuck_orders(more: &str) -> String {
    format!(
        "SELECT o.order_id AS order_id, o.created_at_ms FROM orders o \
         JOIN ({ORDER_JOBS}) oj ON oj.order_id = o.order_id JOIN pricing_jobs j ON j.job_id = oj.job_id \
         WHERE o.status = 'PRICING' {more} GROUP BY o.order_id, o.created_at_ms \
         HAVING SUM(CASE WHEN j.status IN ('succeeded', 'failed', 'cancelled') THEN 0 ELSE 1 END) = 0"
    )
}

/// The columns `order_from_row` reads.
const ORDER_COLUMNS: &str = "order_id, source, seller, seller_key_id, customer, external_id, model_id, material, \
                             colour, quantity, job_id, quote, total, currency, status, failure, assignee, \
                             created_at_ms, updated_at_ms, version, machine, size_x_mm, size_y_mm, size_z_mm, \
                             print_time_s, quote_valid_until_ms, part_count";

/// The same, for the operators' list: every column but the quote document
/// (kilobytes per order, and the list shows only the facts kept beside it).
const LIST_COLUMNS: &str = "order_id, source, seller, seller_key_id, customer, external_id, model_id, material, \
                            colour, quantity, job_id, NULL AS quote, total, currency, status, failure, assignee, \
                            created_at_ms, updated_at_ms, version, machine, size_x_mm, size_y_mm, size_z_mm, \
                            print_time_s, quote_valid_until_ms, part_count";

/// Where a statement that stores a quote also stores what the list shows of
/// it, and until when its price holds: parameters $6 to $11, after the
/// statement's own first five.
pub(super) const SET_LIST_FACTS: &str = "machine = $6, size_x_mm = $7, size_y_mm = $8, size_z_mm = $9, print_time_s = $10, \
                              quote_valid_until_ms = $11";

/// Binds a quote's list facts as `SET_LIST_FACTS` names them.
pub(super) trait BindListFacts {
    fn bind_list_facts(self, facts: &QuoteFacts, priced_at_ms: i64) -> Self;
}

impl<'q> BindListFacts for sqlx::query::Query<'q, Any, sqlx::any::AnyArguments> {
    fn bind_list_facts(self, facts: &QuoteFacts, priced_at_ms: i64) -> Self {
        let size = facts.size_mm();
        self.bind(facts.machine())
            .bind(Float(size.map(|s| s[0])))
            .bind(Float(size.map(|s| s[1])))
            .bind(Float(size.map(|s| s[2])))
            .bind(Float(facts.print_time_s()))
            .bind(facts.valid_until_ms(priced_at_ms))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrderRow {
    pub order_id: String,
    pub source: String,
    pub seller: String,
    pub seller_key_id: Option<String>,
    pub customer: Option<String>,
    pub external_id: Option<String>,
    pub model_id: String,
    pub material: String,
    pub colour: Option<String>,
    pub quantity: i64,
    pub job_id: Option<String>,
    /// The quote document, JSON.
    pub quote: Option<String>,
    pub total: Option<f64>,
    pub currency: Option<String>,
    pub status: OrderStatus,
    /// Why pricing failed.
    pub failure: Option<String>,
    /// The operator who took it.
    pub assignee: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub version: i64,
    /// What the list shows of the quote (`list_facts`), kept beside it.
    pub machine: Option<String>,
    pub size_mm: Option<[f64; 3]>,
    pub print_time_s: Option<f64>,
    /// When its price stops holding: it must be priced again before then,
    /// or before it is approved.
    pub quote_valid_until_ms: Option<i64>,
    /// Parts: 1, or an order of several (`order_parts` holds each, and
    /// `job_id` is empty).
    pub part_count: i64,
}

/// The orders an audit names, by id.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AuditedOrders {
    /// Still PRICING although their pricing job has ended.
    pub stuck: Vec<String>,
    /// Without exactly one `created` event.
    pub unaccounted: Vec<String>,
}

/// An order to create.
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub order_id: String,
    pub source: &'static str,
    pub seller: String,
    pub seller_key_id: Option<String>,
    pub customer: Option<String>,
    pub external_id: Option<String>,
    pub idempotency_key: Option<String>,
    /// A hash of the request, to tell an idempotent retry from a different
    /// request under a reused key.
    pub request_sha256: Option<String>,
    pub model_id: String,
    pub material: String,
    pub colour: Option<String>,
    pub quantity: i64,
    pub now_ms: i64,
}

/// How the order gets its price.
#[derive(Debug, Clone)]
pub enum Pricing {
    /// A pricing job goes to the queue (through the outbox).
    Queue { job: JobRow, payload: String },
    /// The quote cache already holds the quote: the job is answered at once.
    Answered { job: JobRow, quote: String, quote_key: String, total: f64, currency: String },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    New(OrderRow),
    /// The same idempotency key (with the same request), or the same
    /// external id, was seen before: this is that order.
    Existing(OrderRow),
    /// The idempotency key was used before for a different request.
    KeyReused(OrderRow),
}

/// What a move prices an order by from now on.
#[derive(Debug, Clone, Copy)]
pub(super) enum NewPricing<'a> {
    /// Nothing new: the order keeps its price.
    Keep,
    /// A new job, for an order of one part.
    Job(&'a JobRow),
    /// New jobs for parts of an order of several, under these terms (JSON);
    /// the move's caller writes the parts.
    Parts { terms: &'a str },
}

/// A move begun by [`Store::start_move`]: its open transaction, the order
/// as read, and where it goes.
pub(super) struct StartedMove {
    pub(super) tx: Transaction<'static, Any>,
    pub(super) current: OrderRow,
    pub(super) to: OrderStatus,
}

/// How a started move stands.
pub(super) enum Moving {
    Started(Box<StartedMove>),
    /// No move: the order is not there, or its status refuses the event.
    Ended(Transitioned),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Transitioned {
    Done(Box<OrderRow>),
    Illegal { current: Box<OrderRow>, error: IllegalTransition },
    NotFound,
}

/// A CRM status event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmEvent {
    pub event_id: String,
    pub order_id: String,
    pub approve: bool,
    /// The CRM's version of the order, when it sends one.
    pub version: Option<i64>,
    pub occurred_at_ms: i64,
}

impl CrmEvent {
    /// What the event says, in one canonical line: a repeat of the same id
    /// must say the same.
    fn body(&self) -> String {
        let kind = if self.approve { "approved" } else { "cancelled" };
        let version = self.version.map_or_else(|| "-".to_string(), |v| v.to_string());
        format!("{kind} order={} version={version} at={}", self.order_id, self.occurred_at_ms)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum CrmOutcome {
    Applied(Box<OrderRow>),
    /// This event id was applied before, with the same body.
    Duplicate,
    /// This event id was applied before with another body.
    Reused,
    /// An event newer than this one was applied already.
    Stale,
    Illegal {
        current: Box<OrderRow>,
        error: IllegalTransition,
    },
    UnknownOrder,
}

impl CrmOutcome {
    /// As stored with the event and counted.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            CrmOutcome::Applied(_) => "applied",
            CrmOutcome::Duplicate => "duplicate",
            CrmOutcome::Reused => "reused",
            CrmOutcome::Stale => "stale",
            CrmOutcome::Illegal { .. } => "illegal",
            CrmOutcome::UnknownOrder => "unknown_order",
        }
    }
}

/// Who may see which orders.
#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    pub status: Option<OrderStatus>,
    /// Only this seller's orders.
    pub seller: Option<String>,
}

/// A page position: the last order of the previous page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub created_at_ms: i64,
    pub order_id: String,
}

impl Cursor {
    /// `created_at_ms:order_id`, as clients pass it back.
    pub fn encode(&self) -> String {
        format!("{}:{}", self.created_at_ms, self.order_id)
    }

    pub fn decode(text: &str) -> Option<Self> {
        let (at, id) = text.split_once(':')?;
        Some(Self { created_at_ms: at.parse().ok()?, order_id: id.to_string() }).filter(|c| !c.order_id.is_empty())
    }
}

/// Counts for the accounts: orders by source and status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCount {
    pub source: String,
    pub status: OrderStatus,
    pub count: i64,
}

impl Store {
    /// Creates an order and its pricing in one transaction: the order, its
    /// first events and the job (with its outbox row, or answered from the
    /// quote cache) all exist, or none does.
    pub async fn create_order(&self, order: &NewOrder, pricing: Pricing) -> Result<Created, StoreError> {
        let mut tx = self.begin_write().await?;
        if !insert_new_order(&mut tx, order, 1, None).await? {
            tx.rollback().await?;
            return self.existing_order(order).await;
        }
        let now = order.now_ms;
        match pricing {
            Pricing::Queue { job, payload } => {
                crate::store::insert_job_tx(&mut tx, &job, &payload).await?;
                set_status(&mut tx, &order.order_id, OrderStatus::INITIAL, OrderEvent::PricingQueued, now).await?;
                sqlx::query("UPDATE orders SET job_id = $2 WHERE order_id = $1")
                    .bind(&order.order_id)
                    .bind(&job.job_id)
                    .execute(&mut *tx)
                    .await?;
            }
            Pricing::Answered { job, quote, quote_key, total, currency } => {
                crate::store::insert_answered_job_tx(&mut tx, &job, &quote, &quote_key).await?;
                let pricing =
                    set_status(&mut tx, &order.order_id, OrderStatus::INITIAL, OrderEvent::PricingQueued, now).await?;
                set_status(&mut tx, &order.order_id, pricing, OrderEvent::Priced, now).await?;
                let facts = QuoteFacts::read(&quote);
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE orders SET job_id = $2, quote = $3, total = $4, currency = $5, {SET_LIST_FACTS} \
                     WHERE order_id = $1"
                )))
                .bind(&order.order_id)
                .bind(&job.job_id)
                .bind(&quote)
                .bind(total)
                .bind(&currency)
                .bind_list_facts(&facts, now)
                .execute(&mut *tx)
                .await?;
                // After the order names its job, so the event lists it.
                crate::events::priced_from_cache(&mut tx, &job.job_id, &quote, now).await?;
            }
        }
        tx.commit().await?;
        let row = self.order(&order.order_id).await?.ok_or(StoreError::Database(sqlx::Error::RowNotFound))?;
        Ok(Created::New(row))
    }

    /// The order an insert collided with: by idempotency key or external id.
    pub(super) async fn existing_order(&self, order: &NewOrder) -> Result<Created, StoreError> {
        // The order id itself collided otherwise: ids are random, so this is a bug.
        self.repeated_order(order).await?.ok_or(StoreError::Database(sqlx::Error::RowNotFound))
    }

    /// The order `order` repeats, by its idempotency key (with the same
    /// request, or another: `KeyReused`) or its external id; none for a new
    /// order.
    pub async fn repeated_order(&self, order: &NewOrder) -> Result<Option<Created>, StoreError> {
        let found = if let Some(key) = &order.idempotency_key {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {ORDER_COLUMNS}, request_sha256 FROM orders WHERE seller_key_id = $1 AND idempotency_key = $2"
            )))
            .bind(&order.seller_key_id)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?
        } else if let Some(external) = &order.external_id {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {ORDER_COLUMNS}, request_sha256 FROM orders WHERE source = $1 AND external_id = $2"
            )))
            .bind(order.source)
            .bind(external)
            .fetch_optional(&self.pool)
            .await?
        } else {
            None
        };
        let Some(row) = found else { return Ok(None) };
        let stored_hash: Option<String> = row.try_get("request_sha256")?;
        let existing = order_from_row(&row)?;
        if order.idempotency_key.is_some() && stored_hash != order.request_sha256 {
            return Ok(Some(Created::KeyReused(existing)));
        }
        Ok(Some(Created::Existing(existing)))
    }

    pub async fn order(&self, order_id: &str) -> Result<Option<OrderRow>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {ORDER_COLUMNS} FROM orders WHERE order_id = $1")))
            .bind(order_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(order_from_row).transpose().map_err(StoreError::Database)
    }

    /// The orders priced by `job_id`, itself or as one of their parts
    /// (after a job's result changed them).
    pub async fn orders_of_job(&self, job_id: &str) -> Result<Vec<OrderRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE order_id IN (SELECT order_id FROM ({ORDER_JOBS}) oj WHERE job_id = $1)"
        )))
            .bind(job_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(order_from_row).collect::<Result<_, _>>().map_err(StoreError::Database)
    }

    /// Newest first, after `cursor`.
    pub async fn orders_page(
        &self,
        filter: &OrderFilter,
        cursor: Option<&Cursor>,
        limit: i64,
    ) -> Result<Vec<OrderRow>, StoreError> {
        self.page_of(ORDER_COLUMNS, filter, cursor, limit).await
    }

    /// As `orders_page`, without the quote documents (`quote` is `None`):
    /// what the operators' list and its cache read.
    pub async fn list_page(
        &self,
        filter: &OrderFilter,
        cursor: Option<&Cursor>,
        limit: i64,
    ) -> Result<Vec<OrderRow>, StoreError> {
        self.page_of(LIST_COLUMNS, filter, cursor, limit).await
    }

    async fn page_of(
        &self,
        columns: &str,
        filter: &OrderFilter,
        cursor: Option<&Cursor>,
        limit: i64,
    ) -> Result<Vec<OrderRow>, StoreError> {
        let mut conditions = Vec::new();
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        if filter.status.is_some() {
            conditions.push(format!("status = {}", next()));
        }
        if filter.seller.is_some() {
            conditions.push(format!("seller = {}", next()));
        }
        if cursor.is_some() {
            let (a, b, c) = (next(), next(), next());
            conditions.push(format!("(created_at_ms < {a} OR (created_at_ms = {b} AND order_id < {c}))"));
        }
        let limit_param = next();
        let clause = if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) };
        let sql = format!(
            "SELECT {columns} FROM orders {clause} ORDER BY created_at_ms DESC, order_id DESC LIMIT {limit_param}"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(status) = filter.status {
            query = query.bind(Text(status));
        }
        if let Some(seller) = &filter.seller {
            query = query.bind(seller.clone());
        }
        if let Some(c) = cursor {
            query = query.bind(c.created_at_ms).bind(c.created_at_ms).bind(c.order_id.clone());
        }
        let rows = query.bind(limit).fetch_all(&self.pool).await?;
        rows.iter().map(order_from_row).collect::<Result<_, _>>().map_err(StoreError::Database)
    }

    /// Moves an order by `event`, if its status allows it. The update is
    /// conditional on the status and version read, so of two operators
    /// taking the same order exactly one succeeds; the other is told who
    /// took it.
    pub async fn transition_order(
        &self,
        order_id: &str,
        event: OrderEvent,
        actor: &str,
        now_ms: i64,
    ) -> Result<Transitioned, StoreError> {
        self.move_order(order_id, event, actor, now_ms, NewPricing::Keep).await
    }

    /// Prices a `PRICING_FAILED` order again: in one transaction the order
    /// moves to `PRICING` under `job` (its failure cleared) and the job is
    /// queued through the outbox; like any move, conditional on the status
    /// and version read, so two retries at once queue one job.
    pub async fn retry_order_pricing(
        &self,
        order_id: &str,
        job: &JobRow,
        actor: &str,
        now_ms: i64,
    ) -> Result<Transitioned, StoreError> {
        self.move_order(order_id, OrderEvent::RetryPricing, actor, now_ms, NewPricing::Job(job)).await
    }

    /// Prices a `PRICED` order, not yet approved, again under `job`: its
    /// quote goes to `order_quotes` (the order's quote history) and the
    /// order back to `PRICING`, in one transaction.
    pub async fn reprice_order(
        &self,
        order_id: &str,
        job: &JobRow,
        actor: &str,
        now_ms: i64,
    ) -> Result<Transitioned, StoreError> {
        self.move_order(order_id, OrderEvent::Reprice, actor, now_ms, NewPricing::Job(job)).await
    }

    /// The quotes an order had before it was priced again, oldest first:
    /// `(job_id, quote document, replaced_at_ms)`.
    pub async fn order_quote_history(&self, order_id: &str) -> Result<Vec<(Option<String>, String, i64)>, StoreError> {
        let rows =
            sqlx::query("SELECT job_id, quote, replaced_at_ms FROM order_quotes WHERE order_id = $1 ORDER BY id")
                .bind(order_id)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("job_id")?, r.try_get("quote")?, r.try_get("replaced_at_ms")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::Database)
    }

    /// Orders priced and not yet approved whose quote was priced under a
    /// price book version other than `current`, oldest first, up to `limit`.
    pub async fn orders_priced_under_other_books(
        &self,
        current: &str,
        limit: i64,
    ) -> Result<Vec<OrderRow>, StoreError> {
        let version = match self.engine() {
            crate::store::Engine::Postgres => "quote::jsonb ->> 'price_book_version'",
            crate::store::Engine::Sqlite => "json_extract(quote, '$.price_book_version')",
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE status = 'PRICED' \
               AND ({version} IS NULL OR {version} <> $1) ORDER BY created_at_ms, order_id LIMIT $2"
        )))
        .bind(current)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(order_from_row).collect::<Result<_, sqlx::Error>>().map_err(StoreError::Database)
    }

    /// The one conditional move of an order by `event`; with a new pricing
    /// the order is priced by it from now on.
    async fn move_order(
        &self,
        order_id: &str,
        event: OrderEvent,
        actor: &str,
        now_ms: i64,
        pricing: NewPricing<'_>,
    ) -> Result<Transitioned, StoreError> {
        match self.start_move(order_id, event, actor, now_ms, pricing).await? {
            Moving::Started(started) => self.finish_move(started, actor, now_ms).await,
            Moving::Ended(answer) => Ok(answer),
        }
    }

    /// Starts the conditional move of an order by `event`: the update is
    /// conditional on the status and version read, and a concurrent change
    /// between the read and the update is retried (the second read then
    /// sees the other change and answers for it). With a new pricing the
    /// order is priced by it from now on (its price and failure cleared, its
    /// quote kept in its history). The transaction is left open for the
    /// caller's own writes; [`Store::finish_move`] records and commits it.
    pub(super) async fn start_move(
        &self,
        order_id: &str,
        event: OrderEvent,
        actor: &str,
        now_ms: i64,
        pricing: NewPricing<'_>,
    ) -> Result<Moving, StoreError> {
        let clear_price = "failure = NULL, quote = NULL, total = NULL, quote_valid_until_ms = NULL";
        let set_pricing = match pricing {
            NewPricing::Keep => String::new(),
            NewPricing::Job(_) => format!(", job_id = $7, {clear_price}"),
            NewPricing::Parts { .. } => format!(", order_terms = $7, {clear_price}"),
        };
        // A take records the taker; a release puts the order back on the list
        // with nobody holding it; every other move keeps the assignee.
        let set_assignee = if event == OrderEvent::Release { "NULL" } else { "COALESCE($4, assignee)" };
        let update = format!(
            "UPDATE orders SET status = $2, version = version + 1, updated_at_ms = $3, \
                    assignee = {set_assignee}{set_pricing} \
             WHERE order_id = $1 AND status = $5 AND version = $6"
        );
        for _ in 0..OPTIMISTIC_ATTEMPTS {
            let Some(current) = self.order(order_id).await? else { return Ok(Moving::Ended(Transitioned::NotFound)) };
            let to = match status::next(current.status, event) {
                Ok(to) => to,
                Err(error) => {
                    return Ok(Moving::Ended(Transitioned::Illegal { current: Box::new(current), error }));
                }
            };
            let mut tx = self.begin_write().await?;
            let assignee = (event == OrderEvent::Take).then_some(actor);
            let mut query = sqlx::query(sqlx::AssertSqlSafe(update.as_str()))
                .bind(order_id)
                .bind(Text(to))
                .bind(now_ms)
                .bind(assignee)
                .bind(Text(current.status))
                .bind(current.version);
            match pricing {
                NewPricing::Keep => {}
                NewPricing::Job(job) => query = query.bind(job.job_id.as_str()),
                NewPricing::Parts { terms } => query = query.bind(terms),
            }
            if query.execute(&mut *tx).await?.rows_affected() == 0 {
                tx.rollback().await?;
                continue;
            }
            if let NewPricing::Job(job) = pricing {
                crate::store::insert_job_tx(&mut tx, job, &job.message()).await?;
            }
            if let (false, Some(quote)) = (matches!(pricing, NewPricing::Keep), &current.quote) {
                keep_replaced_quote(&mut tx, &current, quote, now_ms).await?;
            }
            return Ok(Moving::Started(Box::new(StartedMove { tx, current, to })));
        }
        Err(StoreError::Contended { what: format!("order `{order_id}`"), attempts: OPTIMISTIC_ATTEMPTS })
    }

    /// Records a started move in the order's history and commits it; the
    /// order as it is now.
    pub(super) async fn finish_move(
        &self,
        started: Box<StartedMove>,
        actor: &str,
        now_ms: i64,
    ) -> Result<Transitioned, StoreError> {
        let StartedMove { mut tx, current, to } = *started;
        let order_id = current.order_id.as_str();
        insert_order_event(&mut tx, order_id, Some(current.status), to, actor, now_ms).await?;
        tx.commit().await?;
        let row = self.order(order_id).await?.ok_or(StoreError::Database(sqlx::Error::RowNotFound))?;
        Ok(Transitioned::Done(Box::new(row)))
    }

    /// Applies a CRM event at most once, and only if it is newer than the
    /// last one applied to its order (by the CRM's version when it sends
    /// one, else by the time it happened). Only an event that changed the order, or
    /// came too late to (stale), is remembered: one refused because of the
    /// order's status or an unknown order is rolled back whole, so the
    /// CRM's retry, once the order can take it, applies.
    pub async fn apply_crm_event(&self, event: &CrmEvent, now_ms: i64) -> Result<CrmOutcome, StoreError> {
        let kind = if event.approve { "approved" } else { "cancelled" };
        let body = event.body();
        for _ in 0..OPTIMISTIC_ATTEMPTS {
            let mut tx = self.begin_write().await?;
            let recorded = sqlx::query(
                "INSERT INTO crm_events (event_id, order_id, kind, outcome, received_at_ms, body) \
                 VALUES ($1, $2, $3, 'pending', $4, $5) ON CONFLICT DO NOTHING",
            )
            .bind(&event.event_id)
            .bind(&event.order_id)
            .bind(kind)
            .bind(now_ms)
            .bind(&body)
            .execute(&mut *tx)
            .await?;
            if recorded.rows_affected() == 0 {
                let seen: Option<String> = sqlx::query_scalar("SELECT body FROM crm_events WHERE event_id = $1")
                    .bind(&event.event_id)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.rollback().await?;
                return Ok(match seen {
                    Some(seen) if seen != body => CrmOutcome::Reused,
                    _ => CrmOutcome::Duplicate,
                });
            }
            let current = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {ORDER_COLUMNS}, crm_version, crm_event_at_ms FROM orders WHERE order_id = $1"
            )))
            .bind(&event.order_id)
            .fetch_optional(&mut *tx)
            .await?;
            let outcome = match current {
                None => CrmOutcome::UnknownOrder,
                Some(row) => {
                    let crm_version: Option<i64> = row.try_get("crm_version")?;
                    let crm_at: Option<i64> = row.try_get("crm_event_at_ms")?;
                    let current = order_from_row(&row)?;
                    let stale = match (event.version, crm_version) {
                        (Some(new), Some(seen)) => new <= seen,
                        _ => crm_at.is_some_and(|seen| event.occurred_at_ms < seen),
                    };
                    let move_by = if event.approve { OrderEvent::Approve } else { OrderEvent::Cancel };
                    let expired = event.approve && current.quote_valid_until_ms.is_some_and(|until| until < now_ms);
                    let mixed =
                        event.approve && current.quote.as_deref().is_some_and(|q| QuoteFacts::read(q).mixes_books());
                    // Refused like any illegal move (not remembered), so the
                    // CRM's retry applies once the order is repriced.
                    let unapprovable = if expired {
                        Some("its quote has expired; price it again first (POST /v1/orders/{id}/reprice)")
                    } else if mixed {
                        Some(
                            "its parts were priced under different price books; price it again first \
                             (POST /v1/orders/{id}/reprice)",
                        )
                    } else {
                        None
                    };
                    if stale {
                        CrmOutcome::Stale
                    } else if let Some(why) = unapprovable {
                        let error = IllegalTransition { from: current.status, event: "approve", why };
                        CrmOutcome::Illegal { current: Box::new(current), error }
                    } else {
                        match status::next(current.status, move_by) {
                            Err(error) => CrmOutcome::Illegal { current: Box::new(current), error },
                            Ok(to) => {
                                let done = sqlx::query(
                                    "UPDATE orders SET status = $2, version = version + 1, updated_at_ms = $3, \
                                            crm_version = COALESCE($4, crm_version), crm_event_at_ms = $5 \
                                     WHERE order_id = $1 AND version = $6",
                                )
                                .bind(&event.order_id)
                                .bind(Text(to))
                                .bind(now_ms)
                                .bind(event.version)
                                .bind(event.occurred_at_ms)
                                .bind(current.version)
                                .execute(&mut *tx)
                                .await?;
                                if done.rows_affected() == 0 {
                                    // Changed under us: try the whole event again.
                                    tx.rollback().await?;
                                    continue;
                                }
                                insert_order_event(&mut tx, &event.order_id, Some(current.status), to, "crm", now_ms)
                                    .await?;
                                let mut changed = current;
                                changed.status = to;
                                changed.version += 1;
                                changed.updated_at_ms = now_ms;
                                CrmOutcome::Applied(Box::new(changed))
                            }
                        }
                    }
                }
            };
            if matches!(outcome, CrmOutcome::Illegal { .. } | CrmOutcome::UnknownOrder) {
                // Refused: forget it, so a retry is weighed afresh.
                tx.rollback().await?;
                return Ok(outcome);
            }
            sqlx::query("UPDATE crm_events SET outcome = $2 WHERE event_id = $1")
                .bind(&event.event_id)
                .bind(outcome.label())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(outcome);
        }
        Err(StoreError::Contended { what: format!("order `{}`", event.order_id), attempts: OPTIMISTIC_ATTEMPTS })
    }

    /// Orders by source and status.
    pub async fn order_counts(&self) -> Result<Vec<StatusCount>, StoreError> {
        let rows =
            sqlx::query("SELECT source, status, COUNT(*) AS n FROM orders GROUP BY source, status ORDER BY source")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                let Text(status) = r.try_get("status")?;
                Ok(StatusCount { source: r.try_get("source")?, status, count: r.try_get("n")? })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::Database)
    }

    /// Orders that entered the system (each has exactly one `created` event),
    /// by source: an order with no row would show up as a difference.
    pub async fn orders_received(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT o.source AS source, COUNT(*) AS n FROM order_events e JOIN orders o ON o.order_id = e.order_id \
             WHERE e.from_status IS NULL GROUP BY o.source ORDER BY o.source",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("source")?, r.try_get("n")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::Database)
    }

    /// Orders still PRICING although their jobs have ended: a result that
    /// was lost between a job and its order (0 unless something is wrong).
    pub async fn orders_pricing_after_their_job(&self) -> Result<i64, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) AS n FROM ({STUCK_ORDERS}) stuck",
            STUCK_ORDERS = stuck_orders("")
        )))
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("n")?)
    }

    /// The orders an audit names, created in `[since_ms, until_ms)`, oldest
    /// first, at most `limit` of each kind: those still PRICING although
    /// their job has ended (a lost result), and those whose history does not
    /// begin with exactly one `created` event (what the accounts would count
    /// as unaccounted).
    pub async fn audit_order_ids(&self, since_ms: i64, until_ms: i64, limit: i64) -> Result<AuditedOrders, StoreError> {
        let ids = |rows: Vec<AnyRow>| {
            rows.iter().map(|r| r.try_get::<String, _>("order_id")).collect::<Result<Vec<_>, sqlx::Error>>()
        };
        let stuck = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{} ORDER BY o.created_at_ms, o.order_id LIMIT $3",
            stuck_orders("AND o.created_at_ms >= $1 AND o.created_at_ms < $2")
        )))
        .bind(since_ms)
        .bind(until_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let unaccounted = sqlx::query(
            "SELECT o.order_id AS order_id FROM orders o \
             LEFT JOIN order_events e ON e.order_id = o.order_id AND e.from_status IS NULL \
             WHERE o.created_at_ms >= $1 AND o.created_at_ms < $2 \
             GROUP BY o.order_id, o.created_at_ms HAVING COUNT(e.order_id) <> 1 \
             ORDER BY o.created_at_ms, o.order_id LIMIT $3",
        )
        .bind(since_ms)
        .bind(until_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(AuditedOrders { stuck: ids(stuck)?, unaccounted: ids(unaccounted)? })
    }

    /// How long the oldest order still waiting for its price has waited, per
    /// lane of its job, in ms (lanes with none waiting are absent).
    pub async fn oldest_pricing_by_lane(&self, now_ms: i64) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT j.lane AS lane, MIN(o.created_at_ms) AS oldest FROM orders o \
             JOIN ({ORDER_JOBS}) oj ON oj.order_id = o.order_id JOIN pricing_jobs j ON j.job_id = oj.job_id \
             WHERE o.status = 'PRICING' GROUP BY j.lane"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let oldest: i64 = r.try_get("oldest")?;
                Ok((r.try_get("lane")?, (now_ms - oldest).max(0)))
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::Database)
    }

    /// The order a pricing job prices (itself, or one of its parts), if it
    /// prices one.
    pub async fn order_of_job(&self, job_id: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT order_id FROM ({ORDER_JOBS}) oj WHERE job_id = $1")))
            .bind(job_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("order_id")).transpose()?)
    }

    /// Dead letters recorded for a queue.
    pub async fn dead_letters_of(&self, queue: &str) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM dead_letters WHERE queue = $1")
            .bind(queue)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    /// The statuses an order took, oldest first.
    pub async fn order_history(&self, order_id: &str) -> Result<Vec<(Option<String>, String, String)>, StoreError> {
        let rows =
            sqlx::query("SELECT from_status, to_status, actor FROM order_events WHERE order_id = $1 ORDER BY id")
                .bind(order_id)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("from_status")?, r.try_get("to_status")?, r.try_get("actor")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::Database)
    }
}

/// After a pricing job ends (`quote` and its total when it succeeded,
/// `failure` when not), moves the orders it prices from PRICING, inside
/// the job's transaction.
pub(crate) async fn settle_orders_of_job(
    tx: &mut Transaction<'_, Any>,
    job_id: &str,
    outcome: Result<(&str, f64, &str), &str>,
    at: i64,
) -> Result<(), StoreError> {
    let from = OrderStatus::Pricing;
    let to = fixed_move(from, if outcome.is_ok() { OrderEvent::Priced } else { OrderEvent::PricingFailed });
    let rows = match outcome {
        Ok((quote, total, currency)) => {
            let facts = QuoteFacts::read(quote);
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE orders SET status = $12, quote = $2, total = $3, currency = $4, version = version + 1, \
                        updated_at_ms = $5, {SET_LIST_FACTS} \
                 WHERE job_id = $1 AND status = $13 RETURNING order_id"
            )))
            .bind(job_id)
            .bind(quote)
            .bind(total)
            .bind(currency)
            .bind(at)
            .bind_list_facts(&facts, at)
            .bind(Text(to))
            .bind(Text(from))
            .fetch_all(&mut **tx)
            .await?
        }
        Err(failure) => {
            sqlx::query(
                "UPDATE orders SET status = $4, failure = $2, version = version + 1, updated_at_ms = $3 \
                 WHERE job_id = $1 AND status = $5 RETURNING order_id",
            )
            .bind(job_id)
            .bind(failure)
            .bind(at)
            .bind(Text(to))
            .bind(Text(from))
            .fetch_all(&mut **tx)
            .await?
        }
    };
    for row in rows {
        let order_id: String = row.try_get("order_id")?;
        insert_order_event(tx, &order_id, Some(from), to, "pricing", at).await?;
    }
    Ok(())
}

/// Hands the orders that failed with `dead_job_id` to `new_job_id` (a
/// replay of its dead letter), back in PRICING, inside the replay's
/// transaction: once the replay prices, so are they.
pub(crate) async fn reprice_failed_orders_of_job(
    tx: &mut Transaction<'_, Any>,
    dead_job_id: &str,
    new_job_id: &str,
    at: i64,
) -> Result<(), StoreError> {
    let from = OrderStatus::PricingFailed;
    let to = fixed_move(from, OrderEvent::RetryPricing);
    let rows = sqlx::query(
        "UPDATE orders SET status = $4, job_id = $2, failure = NULL, version = version + 1, updated_at_ms = $3 \
         WHERE job_id = $1 AND status = $5 RETURNING order_id",
    )
    .bind(dead_job_id)
    .bind(new_job_id)
    .bind(at)
    .bind(Text(to))
    .bind(Text(from))
    .fetch_all(&mut **tx)
    .await?;
    for row in rows {
        let order_id: String = row.try_get("order_id")?;
        insert_order_event(tx, &order_id, Some(from), to, "replay", at).await?;
    }
    Ok(())
}

/// Writes a new order in `CREATED`, with its first event, inside `tx`;
/// `false` when an order with its idempotency key or external id exists.
/// `terms` are those of an order of `part_count` parts.
pub(super) async fn insert_new_order(
    tx: &mut Transaction<'_, Any>,
    order: &NewOrder,
    part_count: i64,
    terms: Option<&str>,
) -> Result<bool, StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO orders (order_id, source, seller, seller_key_id, customer, external_id, idempotency_key, \
                             request_sha256, model_id, material, colour, quantity, status, created_at_ms, \
                             updated_at_ms, version, part_count, order_terms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $14, $13, $13, 1, $15, $16) \
         ON CONFLICT DO NOTHING",
    )
    .bind(&order.order_id)
    .bind(order.source)
    .bind(&order.seller)
    .bind(&order.seller_key_id)
    .bind(&order.customer)
    .bind(&order.external_id)
    .bind(&order.idempotency_key)
    .bind(&order.request_sha256)
    .bind(&order.model_id)
    .bind(&order.material)
    .bind(&order.colour)
    .bind(order.quantity)
    .bind(order.now_ms)
    .bind(Text(OrderStatus::INITIAL))
    .bind(part_count)
    .bind(terms)
    .execute(&mut **tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Ok(false);
    }
    insert_order_event(tx, &order.order_id, None, OrderStatus::INITIAL, "intake", order.now_ms).await?;
    Ok(true)
}

/// Keeps the quote an order had before it is priced again, in its quote
/// history (`order_quotes`).
pub(super) async fn keep_replaced_quote(
    tx: &mut Transaction<'_, Any>,
    order: &OrderRow,
    quote: &str,
    at: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO order_quotes (order_id, job_id, quote, total, currency, replaced_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&order.order_id)
    .bind(order.job_id.as_deref())
    .bind(quote)
    .bind(Float(order.total))
    .bind(order.currency.as_deref())
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Where a move the farm makes on its own (pricing, a replay) takes an
/// order, as the state machine says. These pairs are fixed in the code and
/// legal (`status`'s tests walk them), so an error here is a bug in the
/// machine, not a state an order can be in.
pub(super) fn fixed_move(from: OrderStatus, event: OrderEvent) -> OrderStatus {
    status::next(from, event).unwrap_or_else(|e| panic!("the state machine refuses a move the farm makes: {e}"))
}

/// Moves a new order by `event` (queued for pricing, answered from the
/// cache) inside its creating transaction; the new status.
pub(super) async fn set_status(
    tx: &mut Transaction<'_, Any>,
    order_id: &str,
    from: OrderStatus,
    event: OrderEvent,
    at: i64,
) -> Result<OrderStatus, StoreError> {
    let to = fixed_move(from, event);
    sqlx::query("UPDATE orders SET status = $2, version = version + 1, updated_at_ms = $3 WHERE order_id = $1")
        .bind(order_id)
        .bind(Text(to))
        .bind(at)
        .execute(&mut **tx)
        .await?;
    insert_order_event(tx, order_id, Some(from), to, "intake", at).await?;
    Ok(to)
}

pub(super) async fn insert_order_event(
    tx: &mut Transaction<'_, Any>,
    order_id: &str,
    from: Option<OrderStatus>,
    to: OrderStatus,
    actor: &str,
    at: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO order_events (order_id, from_status, to_status, actor, at_ms) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(order_id)
    .bind(from.map(Text))
    .bind(Text(to))
    .bind(actor)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    crate::events::order_status_changed(tx, order_id, from.map(OrderStatus::as_str), to.as_str(), at).await
}

fn order_from_row(r: &AnyRow) -> Result<OrderRow, sqlx::Error> {
    let Text(status) = r.try_get("status")?;
    Ok(OrderRow {
        order_id: r.try_get("order_id")?,
        source: r.try_get("source")?,
        seller: r.try_get("seller")?,
        seller_key_id: r.try_get("seller_key_id")?,
        customer: r.try_get("customer")?,
        external_id: r.try_get("external_id")?,
        model_id: r.try_get("model_id")?,
        material: r.try_get("material")?,
        colour: r.try_get("colour")?,
        quantity: r.try_get("quantity")?,
        job_id: r.try_get("job_id")?,
        quote: r.try_get("quote")?,
        total: r.try_get("total")?,
        currency: r.try_get("currency")?,
        status,
        failure: r.try_get("failure")?,
        assignee: r.try_get("assignee")?,
        created_at_ms: r.try_get("created_at_ms")?,
        updated_at_ms: r.try_get("updated_at_ms")?,
        version: r.try_get("version")?,
        machine: r.try_get("machine")?,
        size_mm: match (r.try_get("size_x_mm")?, r.try_get("size_y_mm")?, r.try_get("size_z_mm")?) {
            (Some(x), Some(y), Some(z)) => Some([x, y, z]),
            _ => None,
        },
        print_time_s: r.try_get("print_time_s")?,
        quote_valid_until_ms: r.try_get("quote_valid_until_ms")?,
        part_count: r.try_get("part_count")?,
    })
}
