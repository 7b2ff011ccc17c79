//! Orders as a service: place an order, apply a CRM event, cancel an
//! order's pricing. The HTTP routes and the RabbitMQ intake are thin
//! adapters over these; what goes wrong is an [`OrderError`], which each
//! adapter turns into its own answer (a status code, or a retry or a dead
//! letter).

use scheduler::messages::now_ms;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::parts::NewPart;
use super::status::OrderStatus;
use super::store::{Created, CrmEvent, CrmOutcome, NewOrder, OrderRow, Pricing};
use crate::pricing::{JobAsk, PricingError};
use crate::state::AppState;
use crate::store::StoreError;
use crate::text;

/// Why an order, or a CRM event, was not taken.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OrderError {
    /// The order's job cannot be priced as asked: its fields, its model, or
    /// the key's quota.
    #[error(transparent)]
    Pricing(#[from] PricingError),
    /// A stored quote that is not a quote document.
    #[error("a stored quote cannot be read: {0}")]
    Corrupt(String),
    /// No such order, or not one the caller may see.
    #[error("order `{order_id}` not found")]
    NotFound { order_id: String },
    /// The order's status does not allow the move.
    #[error("{message}")]
    Refused { message: String, status: OrderStatus, assignee: Option<String> },
    /// The order is another operator's to move.
    #[error("{0}")]
    NotTheTaker(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl OrderError {
    /// Whether trying again later may succeed: the database, not the order,
    /// was the trouble.
    pub(crate) fn is_transient(&self) -> bool {
        matches!(self, OrderError::Store(_) | OrderError::Corrupt(_) | OrderError::Pricing(PricingError::Store(_)))
    }
}

/// An order: one part (`model_id`, `material`, `quantity`, `colour`), or
/// several (`items`), priced together.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub(crate) struct CreateOrder {
    /// A model uploaded with `POST /v1/models` (an order of one part;
    /// required unless `items` is given).
    #[serde(default)]
    pub(crate) model_id: Option<String>,
    /// Required with `model_id`.
    #[serde(default)]
    pub(crate) material: Option<String>,
    #[serde(default = "crate::numbers::one", deserialize_with = "crate::numbers::whole_number")]
    pub(crate) quantity: u32,
    #[serde(default)]
    pub(crate) colour: Option<String>,
    /// An order of several parts, instead of `model_id` and `material`:
    /// each is priced by a job of its own, and the order is `PRICED` when
    /// all are, with one total (the setup fee and the minimum order once).
    /// At most the server's `FARM_MAX_ORDER_PARTS` (20 unless set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) items: Option<Vec<OrderItem>>,
    /// The seller's customer, when the seller sells on.
    #[serde(default)]
    pub(crate) customer: Option<String>,
}

/// A part of an order of several.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub(crate) struct OrderItem {
    pub(crate) model_id: String,
    pub(crate) material: String,
    #[serde(default = "crate::numbers::one", deserialize_with = "crate::numbers::whole_number")]
    pub(crate) quantity: u32,
    #[serde(default)]
    pub(crate) colour: Option<String>,
}

impl CreateOrder {
    /// The parts asked for, in order: one for the single-part form, or
    /// `items` (which then must be the only way the parts are given).
    fn parts(&self, max_parts: u32) -> Result<Vec<OrderItem>, PricingError> {
        let refuse = |why: String| Err(PricingError::Invalid(why));
        let Some(items) = &self.items else {
            let (Some(model_id), Some(material)) = (&self.model_id, &self.material) else {
                return refuse(
                    "`model_id` and `material` are required (or `items`, for an order of several parts)".into(),
                );
            };
            return Ok(vec![OrderItem {
                model_id: model_id.clone(),
                material: material.clone(),
                quantity: self.quantity,
                colour: self.colour.clone(),
            }]);
        };
        if self.model_id.is_some() || self.material.is_some() || self.colour.is_some() || self.quantity != 1 {
            return refuse(
                "give either `model_id`, `material`, `quantity` and `colour` (one part), or `items`, not both".into(),
            );
        }
        if items.is_empty() {
            return refuse("`items` must hold at least one part".into());
        }
        if items.len() > max_parts as usize {
            return refuse(format!("an order holds at most {max_parts} parts; this one has {}", items.len()));
        }
        Ok(items.clone())
    }
}

/// The input of an order, wherever it came from.
pub(crate) struct OrderInput {
    pub(crate) source: &'static str,
    pub(crate) seller: String,
    pub(crate) seller_key_id: Option<String>,
    pub(crate) external_id: Option<String>,
    pub(crate) idempotency_key: Option<String>,
    pub(crate) request: CreateOrder,
}

/// Validates an order, then writes it with its pricing job (or its cached
/// quote) in one transaction. Shared by the HTTP route and the queue intake.
pub(crate) async fn place_order(state: &AppState, input: OrderInput) -> Result<Created, OrderError> {
    let mut parts = input.request.parts(state.settings.max_order_parts)?;
    for part in &mut parts {
        part.material = text::normalised_name(&part.material);
        part.colour = part.colour.as_deref().map(text::normalised_name);
    }
    let request = &input.request;
    let more_fields = [
        ("customer", request.customer.as_deref(), text::MAX_NAME_CHARS),
        ("external_id", input.external_id.as_deref(), text::MAX_ID_CHARS),
    ];
    let now = now_ms();
    let key_id = input.seller_key_id.as_deref();
    let request_sha256 = input.idempotency_key.as_ref().map(|_| {
        let canonical = serde_json::to_vec(request).expect("requests always serialize");
        Sha256::digest(&canonical).iter().map(|b| format!("{b:02x}")).collect::<String>()
    });
    let order = NewOrder {
        order_id: uuid::Uuid::now_v7().to_string(),
        source: input.source,
        seller: input.seller.clone(),
        seller_key_id: input.seller_key_id.clone(),
        customer: request.customer.clone(),
        external_id: input.external_id.clone(),
        idempotency_key: input.idempotency_key.clone(),
        request_sha256,
        // The first part's, so the operators' list shows it.
        model_id: parts[0].model_id.clone(),
        material: parts[0].material.clone(),
        colour: parts[0].colour.clone(),
        quantity: i64::from(parts[0].quantity),
        now_ms: now,
    };
    // A repeat (the same idempotency key, or external id) is answered with
    // the order it repeats before anything is checked against the quota: a
    // client retrying after a lost answer must learn its order exists.
    if let Some(repeated) = state.services.store.repeated_order(&order).await? {
        return Ok(repeated);
    }
    let jobs_at_once = u32::try_from(parts.len()).unwrap_or(u32::MAX);
    let mut pricings = Vec::with_capacity(parts.len());
    for (position, part) in (1..).zip(&parts) {
        let ask = JobAsk {
            model_id: &part.model_id,
            material: &part.material,
            quantity: part.quantity,
            colour: part.colour.as_deref(),
            jobs_at_once,
        };
        let prepared = crate::pricing::prepare_job(state, ask, &more_fields, &input.seller, key_id, now)
            .await
            .map_err(|e| match e {
                PricingError::Invalid(why) if jobs_at_once > 1 => {
                    PricingError::Invalid(format!("part {position}: {why}"))
                }
                e => e,
            })?;
        pricings.push(pricing_of(prepared)?);
    }
    let store = &state.services.store;
    let created = if parts.len() == 1 {
        let pricing = pricings.pop().expect("one part, one pricing");
        store.create_order(&order, pricing).await?
    } else {
        let terms = calculator::order::OrderTerms::of(&state.services.pricing.book);
        let new_parts = parts
            .into_iter()
            .zip(pricings)
            .map(|(part, pricing)| NewPart {
                model_id: part.model_id,
                material: part.material,
                colour: part.colour,
                quantity: i64::from(part.quantity),
                pricing,
            })
            .collect();
        store.create_order_of_parts(&order, &terms, new_parts).await?
    };
    if let Created::New(row) = &created {
        state.relay_wakeup.notify_one();
        metrics::counter!("farm_orders_received_total", "source" => row.source.clone()).increment(1);
        super::changed(state, row).await;
    }
    Ok(created)
}

/// How a prepared job is priced: answered from the quote cache, or queued.
fn pricing_of(prepared: crate::pricing::PreparedJob) -> Result<Pricing, OrderError> {
    let job = prepared.job;
    Ok(match prepared.cached {
        Some((quote, quote_key)) => {
            let document: serde_json::Value =
                serde_json::from_str(&quote).map_err(|e| OrderError::Corrupt(e.to_string()))?;
            let total = document["total"].as_f64().unwrap_or_default();
            let currency = document["currency"].as_str().unwrap_or_default().to_string();
            Pricing::Answered { job, quote, quote_key, total, currency }
        }
        None => {
            let payload = job.message();
            Pricing::Queue { job, payload }
        }
    })
}

/// A CRM status event, the same JSON on the queue and over HTTP.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub(crate) struct CrmEventBody {
    /// The CRM's id of this event: a repeated one changes nothing.
    pub(crate) event_id: String,
    pub(crate) order_id: String,
    /// `approved` (for manufacturing) or `cancelled`.
    #[serde(rename = "type")]
    pub(crate) kind: String,
    /// The CRM's version of the order, increasing; an event older than one
    /// already applied is ignored.
    #[serde(default, deserialize_with = "crate::numbers::optional_whole_i64")]
    pub(crate) version: Option<i64>,
    /// When it happened in the CRM, ms since the Unix epoch; orders events
    /// that carry no version.
    #[serde(deserialize_with = "crate::numbers::whole_i64")]
    pub(crate) occurred_at_ms: i64,
}

impl CrmEventBody {
    pub(crate) fn to_event(&self) -> Result<CrmEvent, String> {
        let approve = match self.kind.as_str() {
            "approved" => true,
            "cancelled" => false,
            other => return Err(format!("unknown CRM event type `{other}`; expected `approved` or `cancelled`")),
        };
        if self.event_id.trim().is_empty() || self.order_id.trim().is_empty() {
            return Err("`event_id` and `order_id` must not be empty".into());
        }
        for (field, value) in [("event_id", &self.event_id), ("order_id", &self.order_id)] {
            if let Some(why) = text::refusal(field, value, text::MAX_ID_CHARS) {
                return Err(why);
            }
        }
        Ok(CrmEvent {
            event_id: self.event_id.clone(),
            order_id: self.order_id.clone(),
            approve,
            version: self.version,
            occurred_at_ms: self.occurred_at_ms,
        })
    }
}

/// Applies a CRM event, applied at most once: the same event id again is a
/// `duplicate`, an older one `stale`. One refused (409, unknown order) is not
/// remembered, so a retry is weighed again.
pub(crate) async fn apply_crm(state: &AppState, event: &CrmEvent) -> Result<CrmOutcome, OrderError> {
    let outcome = state.services.store.apply_crm_event(event, now_ms()).await?;
    if let CrmOutcome::Applied(row) = &outcome {
        super::changed(state, row).await;
        if row.status == OrderStatus::Cancelled {
            cancel_pricing(state, row).await?;
        }
    }
    metrics::counter!("farm_crm_events_total", "outcome" => outcome.label()).increment(1);
    Ok(outcome)
}

/// Cancels a cancelled order's pricing jobs (its own, or each part's),
/// those still open.
pub(crate) async fn cancel_pricing(state: &AppState, order: &OrderRow) -> Result<(), StoreError> {
    let store = &state.services.store;
    let mut jobs: Vec<String> = order.job_id.iter().cloned().collect();
    if order.part_count > 1 {
        jobs.extend(store.order_parts(&order.order_id).await?.into_iter().filter_map(|p| p.job_id));
    }
    for job_id in jobs {
        let control = serde_json::to_string(&scheduler::Control::Cancel { job_id: job_id.clone() })
            .expect("control messages always serialize");
        store.cancel_job(&job_id, &control, now_ms()).await?;
        state.relay_wakeup.notify_one();
    }
    Ok(())
}
