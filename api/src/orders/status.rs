//! The order's life as a state machine: which event moves which status
//! where, and why the others are refused. Pure, so every rule is testable
//! on its own.
//!
//! ```text
//! CREATED ─▶ PRICING ─▶ PRICED ─▶ MANUFACTURING_APPROVED ─▶ MANUFACTURING_STARTED
//!               │                                                  │
//!               └─▶ PRICING_FAILED                                 ▼
//!                                          MANUFACTURING_COMPLETED ─▶ SHIPPED
//! CANCELLED: from any status before MANUFACTURING_STARTED.
//! ```

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    Created,
    Pricing,
    Priced,
    PricingFailed,
    ManufacturingApproved,
    ManufacturingStarted,
    ManufacturingCompleted,
    Shipped,
    Cancelled,
}

impl OrderStatus {
    /// The status an order is written with; every later one comes from
    /// [`next`].
    pub const INITIAL: OrderStatus = OrderStatus::Created;

    pub const ALL: [OrderStatus; 9] = [
        OrderStatus::Created,
        OrderStatus::Pricing,
        OrderStatus::Priced,
        OrderStatus::PricingFailed,
        OrderStatus::ManufacturingApproved,
        OrderStatus::ManufacturingStarted,
        OrderStatus::ManufacturingCompleted,
        OrderStatus::Shipped,
        OrderStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Created => "CREATED",
            OrderStatus::Pricing => "PRICING",
            OrderStatus::Priced => "PRICED",
            OrderStatus::PricingFailed => "PRICING_FAILED",
            OrderStatus::ManufacturingApproved => "MANUFACTURING_APPROVED",
            OrderStatus::ManufacturingStarted => "MANUFACTURING_STARTED",
            OrderStatus::ManufacturingCompleted => "MANUFACTURING_COMPLETED",
            OrderStatus::Shipped => "SHIPPED",
            OrderStatus::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Manufacturing has begun: the order can no longer be cancelled.
    pub fn in_manufacturing(self) -> bool {
        matches!(self, OrderStatus::ManufacturingStarted | OrderStatus::ManufacturingCompleted | OrderStatus::Shipped)
    }
}

impl std::fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What can happen to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderEvent {
    /// Its pricing job was queued.
    PricingQueued,
    /// The quote is in.
    Priced,
    /// The pricing job failed.
    PricingFailed,
    /// Price a `PRICING_FAILED` order again, with a new job.
    RetryPricing,
    /// The CRM approved it for manufacturing.
    Approve,
    /// An operator took it into production.
    Take,
    Complete,
    Ship,
    Cancel,
    /// The operator who took it gives it back to the list, unmade.
    Release,
    /// A priced order, not yet approved, is priced again under the current
    /// price book (its quote expired, or the book changed).
    Reprice,
}

impl OrderEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderEvent::PricingQueued => "pricing queued",
            OrderEvent::Priced => "priced",
            OrderEvent::PricingFailed => "pricing failed",
            OrderEvent::RetryPricing => "retry pricing",
            OrderEvent::Approve => "approve",
            OrderEvent::Take => "take",
            OrderEvent::Complete => "complete",
            OrderEvent::Ship => "ship",
            OrderEvent::Cancel => "cancel",
            OrderEvent::Release => "release",
            OrderEvent::Reprice => "reprice",
        }
    }
}

/// A move the order's status does not allow, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {event} an order that is {from}: {why}")]
pub struct IllegalTransition {
    pub from: OrderStatus,
    pub event: &'static str,
    pub why: &'static str,
}

/// Where `event` takes an order that is `from`.
pub fn next(from: OrderStatus, event: OrderEvent) -> Result<OrderStatus, IllegalTransition> {
    use OrderEvent as E;
    use OrderStatus as S;
    let to = match (from, event) {
        (S::Created, E::PricingQueued) => S::Pricing,
        (S::Pricing, E::Priced) => S::Priced,
        (S::Pricing, E::PricingFailed) => S::PricingFailed,
        (S::PricingFailed, E::RetryPricing) => S::Pricing,
        (S::Priced, E::Approve) => S::ManufacturingApproved,
        (S::ManufacturingApproved, E::Take) => S::ManufacturingStarted,
        (S::ManufacturingStarted, E::Complete) => S::ManufacturingCompleted,
        (S::ManufacturingCompleted, E::Ship) => S::Shipped,
        (S::ManufacturingStarted, E::Release) => S::ManufacturingApproved,
        (S::Priced, E::Reprice) => S::Pricing,
        (status, E::Cancel) if !status.in_manufacturing() && status != S::Cancelled => S::Cancelled,
        (status, event) => {
            let why = match (status, event) {
                (S::Cancelled, _) => "it has been cancelled",
                (s, E::Cancel) if s.in_manufacturing() => "manufacturing has already started",
                (S::Created | S::Pricing, E::Approve | E::Take) => "it has no price yet",
                (S::PricingFailed, _) => "its pricing failed; retry its pricing or cancel it",
                (_, E::RetryPricing) => "only an order whose pricing failed is priced again",
                (_, E::Reprice) => "only a priced order not yet approved is repriced",
                (S::Priced, E::Take) => "the CRM has not approved it for manufacturing",
                (S::ManufacturingStarted, E::Take) => "an operator has already taken it",
                (_, E::Approve) => "only a priced order can be approved",
                (_, E::Take) => "only an order approved for manufacturing can be taken",
                (_, E::Complete) => "only an order in manufacturing can be completed",
                (_, E::Ship) => "only a completed order can be shipped",
                (_, E::Release) => "only an order in manufacturing, not yet completed, can be released",
                _ => "that step does not follow from here",
            };
            return Err(IllegalTransition { from: status, event: event.as_str(), why });
        }
    };
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use OrderEvent as E;
    use OrderStatus as S;

    #[test]
    fn the_happy_path_runs_from_created_to_shipped() {
        let mut status = S::Created;
        for (event, expected) in [
            (E::PricingQueued, S::Pricing),
            (E::Priced, S::Priced),
            (E::Approve, S::ManufacturingApproved),
            (E::Take, S::ManufacturingStarted),
            (E::Complete, S::ManufacturingCompleted),
            (E::Ship, S::Shipped),
        ] {
            status = next(status, event).unwrap();
            assert_eq!(status, expected);
        }
    }

    #[test]
    fn cancelling_is_allowed_only_before_manufacturing_starts() {
        for status in S::ALL {
            let result = next(status, E::Cancel);
            let allowed = !status.in_manufacturing() && status != S::Cancelled;
            assert_eq!(result.is_ok(), allowed, "{status}");
            if let Err(e) = result {
                assert!(!e.why.is_empty(), "{e}");
            }
        }
        assert_eq!(next(S::ManufacturingApproved, E::Cancel), Ok(S::Cancelled));
    }

    #[test]
    fn a_taken_order_can_be_released_back_to_the_list_and_nothing_else_can() {
        assert_eq!(next(S::ManufacturingStarted, E::Release), Ok(S::ManufacturingApproved));
        for status in S::ALL.into_iter().filter(|&s| s != S::ManufacturingStarted) {
            let err = next(status, E::Release).unwrap_err();
            assert!(!err.why.is_empty(), "{err}");
        }
    }

    #[test]
    fn every_illegal_move_says_why() {
        let err = next(S::ManufacturingStarted, E::Take).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot take an order that is MANUFACTURING_STARTED: an operator has already taken it"
        );
        let err = next(S::Priced, E::Take).unwrap_err();
        assert!(err.why.contains("not approved"), "{err}");
        let mut legal = 0;
        for status in S::ALL {
            for event in [
                E::PricingQueued,
                E::Priced,
                E::PricingFailed,
                E::RetryPricing,
                E::Approve,
                E::Take,
                E::Complete,
                E::Ship,
            ] {
                match next(status, event) {
                    Ok(_) => legal += 1,
                    Err(e) => assert!(e.to_string().contains(status.as_str())),
                }
            }
        }
        assert_eq!(legal, 8, "one legal step out of each status but the last, and a retry of a failed pricing");
        assert_eq!(next(S::PricingFailed, E::RetryPricing), Ok(S::Pricing));
        let err = next(S::Priced, E::RetryPricing).unwrap_err();
        assert!(err.why.contains("only an order whose pricing failed"), "{err}");
        for s in S::ALL {
            assert_eq!(OrderStatus::parse(s.as_str()), Some(s));
        }
    }
}
