//! Orders as a service: place an order, apply a CRM event, cancel an
//! order's pricing. The HTTP routes and the RabbitMQ intake are thin
//! adapters over these; what goes wrong is an [`OrderError`], which each
//! adapter turns into its own answer (a status code, or a retry or a dead
//! letter).

use scheduler::messages::now_ms;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

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

#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub(crate) struct CreateOrder {
    /// A model uploaded with `POST /v1/models`.
    pub(crate) model_id: String,
    pub(crate) material: String,
    #[serde(default = "crate::numbers::one", deserialize_with = "crate::numbers::whole_number")]
    pub(crate) quantity: u32,
    #[serde(default)]
    pub(crate) colour: Option<String>,
    /// The seller's customer, when the seller sells on.
    #[serde(default)]
    pub(crate) customer: Option<String>,
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
pub(crate) async fn place_order(state: &AppState, mut input: OrderInput) -> Result<Created, OrderError> {
    input.request.material = text::normalised_name(&input.request.material);
    input.request.colour = input.request.colour.as_deref().map(text::normalised_name);
    let request = &input.request;
    let ask = JobAsk {
        model_id: &request.model_id,
        material: &request.material,
        quantity: request.quantity,
        colour: request.colour.as_deref(),
    };
    let more_fields = [
        ("customer", request.customer.as_deref(), text::MAX_NAME_CHARS),
        ("external_id", input.external_id.as_deref(), text::MAX_ID_CHARS),
    ];
    let now = now_ms();
    let key_id = input.seller_key_id.as_deref();
    let prepared = crate::pricing::prepare_job(state, ask, &more_fields, &input.seller, key_id, now).await?;
    let request_sha256 = input.idempotency_key.as_ref().map(|_| {
        let canonical = serde_json::to_vec(request).expect("requests always serialize");
        Sha256::digest(&canonical).iter().map(|b| format!("{b:02x}")).collect::<String>()
    });
    let order = NewOrder {
        order_id: uuid::Uuid::now_v7().to_string(),
        source: input.source,
        seller: input.seller,
        seller_key_id: input.seller_key_id.clone(),
        customer: request.customer.clone(),
        external_id: input.external_id,
        idempotency_key: input.idempotency_key,
        request_sha256,
        model_id: request.model_id.clone(),
        material: request.material.clone(),
        colour: request.colour.clone(),
        quantity: i64::from(request.quantity),
        now_ms: now,
    };
    let job = prepared.job;
    let pricing = match prepared.cached {
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
    };
    let created = state.services.store.create_order(&order, pricing).await?;
    if let Created::New(row) = &created {
        state.relay_wakeup.notify_one();
        metrics::counter!("farm_orders_received_total", "source" => row.source.clone()).increment(1);
        super::changed(state, row).await;
    }
    Ok(created)
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

/// Cancels a cancelled order's pricing job, if it is still open.
pub(crate) async fn cancel_pricing(state: &AppState, order: &OrderRow) -> Result<(), StoreError> {
    if let Some(job_id) = &order.job_id {
        let control = serde_json::to_string(&scheduler::Control::Cancel { job_id: job_id.clone() })
            .expect("control messages always serialize");
        state.services.store.cancel_job(job_id, &control, now_ms()).await?;
        state.relay_wakeup.notify_one();
    }
    Ok(())
}
