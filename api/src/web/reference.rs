//! `GET /v1/reference`: the static data the pages keep on the client
//! (materials, colours, machines, order statuses, the price book's version),
//! as the seeds ask (000, 003 item 4).
//!
//! The document is built once, when the process starts, from the price book
//! it loaded; its ETag is a hash of its bytes, so every replica with the same
//! price book answers with the same ETag. A page stores the document and the
//! ETag in Local Storage and revalidates with `If-None-Match`: an unchanged
//! document costs a 304 and no body.

use axum::http::header::IF_NONE_MATCH;
use axum::http::{HeaderMap, HeaderValue};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::orders::status::OrderStatus;

/// The API's limits the pages check before they send a request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PageLimits {
    pub(crate) max_model_bytes: u64,
    pub(crate) max_order_parts: u32,
}

/// The document and its ETag.
#[derive(Debug)]
pub(crate) struct Reference {
    pub(super) body: bytes::Bytes,
    pub(super) etag: HeaderValue,
}

impl Reference {
    pub(crate) fn new(pricing: &scheduler::Pricing, limits: PageLimits) -> Self {
        let book = &pricing.book;
        let materials: Vec<_> = book
            .materials
            .iter()
            .map(|m| {
                json!({
                    "id": m.name,
                    "technology": m.technology.as_str(),
                    "colours": m.colours,
                    "machines": m.machines,
                })
            })
            .collect();
        let mut colours: Vec<&str> = book.materials.iter().flat_map(|m| m.colours.iter().map(String::as_str)).collect();
        colours.sort_unstable();
        colours.dedup();
        let machines: Vec<_> = book
            .machines
            .iter()
            .map(|m| {
                json!({
                    "id": m.name,
                    "technology": m.technology.as_str(),
                    "build_volume_mm": m.build_volume_mm,
                })
            })
            .collect();
        let statuses: Vec<&str> = OrderStatus::ALL.iter().map(|s| s.as_str()).collect();
        let document = json!({
            "price_book_version": book.version,
            "currency": book.currency,
            "max_quantity": book.max_quantity,
            "materials": materials,
            "colours": colours,
            "machines": machines,
            "order_statuses": statuses,
            // The largest upload accepted: the quote page refuses a larger
            // file before sending it.
            "max_model_bytes": limits.max_model_bytes,
            // The most parts one order holds: the quote page stops adding
            // parts at it.
            "max_order_parts": limits.max_order_parts,
            // Faces steeper than this from the horizontal need support: the
            // 3D preview colours them before a quote says more.
            "overhang_angle_deg": calculator::fdm::support_angle_deg(&pricing.settings.fdm.profile),
        });
        let body = serde_json::to_vec(&document).expect("reference data always serializes");
        let digest = Sha256::digest(&body);
        let tag: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        let etag = HeaderValue::from_str(&format!("\"{tag}\"")).expect("hex is a valid header");
        Self { body: body.into(), etag }
    }

    /// Whether `If-None-Match` names this document (a list, or `*`).
    pub(super) fn matches(&self, headers: &HeaderMap) -> bool {
        let ours = self.etag.to_str().unwrap_or_default();
        headers.get_all(IF_NONE_MATCH).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == ours
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_etag_matches_itself_in_a_list_weakly_or_as_a_star_and_nothing_else() {
        let reference =
            Reference::new(&scheduler::Pricing::default(), PageLimits { max_model_bytes: 1000, max_order_parts: 20 });
        let ours = reference.etag.to_str().unwrap().to_string();
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(IF_NONE_MATCH, HeaderValue::from_str(value).unwrap());
            reference.matches(&headers)
        };
        assert!(with(&ours));
        assert!(with(&format!("\"other\", W/{ours}")));
        assert!(with("*"));
        assert!(!with("\"other\""));
        assert!(!reference.matches(&HeaderMap::new()));
        let document: serde_json::Value = serde_json::from_slice(&reference.body).unwrap();
        assert!(document["materials"].as_array().is_some_and(|m| !m.is_empty()));
        assert_eq!(document["order_statuses"].as_array().map(Vec::len), Some(OrderStatus::ALL.len()));
        assert_eq!(
            Reference::new(&scheduler::Pricing::default(), PageLimits { max_model_bytes: 1000, max_order_parts: 20 })
                .etag,
            reference.etag,
            "the same book, the same tag"
        );
    }
}
