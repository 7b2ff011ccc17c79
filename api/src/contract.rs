//! The API contract made exact: the limits, lists and formats the server
//! enforces, written into the OpenAPI document, and the JSON error shape on
//! every client error, even those axum answers before a handler runs.
//!
//! utoipa generates the document from the route registrations, but some of
//! what the server enforces is only known at run time: the materials and the
//! largest quantity come from the loaded price book. Rules here are keyed by
//! the *meaning* of a field (every `limit` parameter, every `quantity`
//! property), not by route, so a new route that takes a `limit` is covered
//! without being listed; `exact_document` panics at start if a rule finds
//! nothing to apply to, so a renamed field cannot silently leave the
//! document loose (a unit test builds the real document).

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::{ErrorBody, ErrorDetail};

/// What the server enforces that the generated document cannot know.
#[derive(Debug, Clone)]
pub(crate) struct ContractFacts {
    /// The price book's material names, as the book spells them.
    pub(crate) materials: Vec<String>,
    /// Every colour any material offers.
    pub(crate) colours: Vec<String>,
    /// Each material with the colours it offers.
    pub(crate) colours_of: Vec<(String, Vec<String>)>,
    pub(crate) max_quantity: u32,
    pub(crate) max_page: usize,
    pub(crate) max_idempotency_key: usize,
    pub(crate) max_model_bytes: u64,
    /// Parts one order may hold.
    pub(crate) max_order_parts: u32,
}

impl ContractFacts {
    pub(crate) fn of(book: &calculator::PriceBook, max_model_bytes: u64, max_order_parts: u32) -> Self {
        let mut colours: Vec<String> = book.materials.iter().flat_map(|m| m.colours.iter().cloned()).collect();
        colours.sort();
        colours.dedup();
        Self {
            materials: book.materials.iter().map(|m| m.name.clone()).collect(),
            colours,
            colours_of: book.materials.iter().map(|m| (m.name.clone(), m.colours.clone())).collect(),
            max_quantity: book.max_quantity,
            max_page: crate::text::MAX_PAGE,
            max_idempotency_key: crate::text::MAX_IDEMPOTENCY_KEY,
            max_model_bytes,
            max_order_parts,
        }
    }
}

/// The generated document with the server's real limits written in.
pub(crate) fn exact_document(openapi: &utoipa::openapi::OpenApi, facts: &ContractFacts) -> Value {
    let mut doc = serde_json::to_value(openapi).expect("an OpenAPI document always serializes");
    if let Some(description) = doc.pointer_mut("/info/description") {
        let general = description.as_str().unwrap_or_default().to_string();
        *description = Value::String(format!("{general}\n\n{}", house_rules(facts)));
    }
    let mut applied = Applied::default();
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            let Some(operations) = item.as_object_mut() else { continue };
            for operation in operations.values_mut() {
                tighten_parameters(operation, facts, &mut applied);
                if path == "/v1/models" {
                    binary_model_body(operation, facts, &mut applied);
                }
                if path == "/v1/models/{model_id}" {
                    binary_model_download(operation, facts, &mut applied);
                }
            }
        }
    }
    if let Some(schemas) = doc.pointer_mut("/components/schemas").and_then(Value::as_object_mut) {
        for (name, schema) in schemas.iter_mut() {
            tighten_schema(name, schema, facts, &mut applied);
        }
    }
    add_links(&mut doc, &mut applied);
    applied.assert_complete();
    doc
}

/// Which rules found something to apply to.
#[derive(Debug, Default)]
struct Applied {
    limit: bool,
    cursor: bool,
    status: bool,
    idempotency_key: bool,
    model_body: bool,
    model_download: bool,
    quantity: bool,
    material: bool,
    colour: bool,
    crm_type: bool,
    ids: bool,
    links: bool,
}

impl Applied {
    fn assert_complete(&self) {
        let missing: Vec<&str> = [
            ("limit", self.limit),
            ("cursor", self.cursor),
            ("status", self.status),
            ("Idempotency-Key", self.idempotency_key),
            ("the model body", self.model_body),
            ("the model download", self.model_download),
            ("quantity", self.quantity),
            ("material", self.material),
            ("colour", self.colour),
            ("the CRM event type", self.crm_type),
            ("model_id", self.ids),
            ("links", self.links),
        ]
        .into_iter()
        .filter_map(|(name, done)| (!done).then_some(name))
        .collect();
        assert!(missing.is_empty(), "contract rules that found nothing to apply to: {missing:?}");
    }
}

fn tighten_parameters(operation: &mut Value, facts: &ContractFacts, applied: &mut Applied) {
    let Some(parameters) = operation.get_mut("parameters").and_then(Value::as_array_mut) else { return };
    for parameter in parameters {
        let name = parameter["name"].as_str().unwrap_or_default().to_string();
        let place = parameter["in"].as_str().unwrap_or_default().to_string();
        let schema = &mut parameter["schema"];
        match (place.as_str(), name.as_str()) {
            ("query", "limit") => {
                *schema = json!({"type": "integer", "minimum": 1, "maximum": facts.max_page, "default": 50});
                applied.limit = true;
            }
            ("query", "cursor") => {
                // What `next_cursor` holds: the last row's creation time and id.
                *schema = json!({
                    "type": "string", "maxLength": crate::text::MAX_ID_CHARS,
                    "pattern": "^-?[0-9]{1,18}:[^\\u0000-\\u001F\\u007F-\\u009F]+$",
                });
                applied.cursor = true;
            }
            ("query", "status") => {
                *schema = json!({"$ref": "#/components/schemas/OrderStatus"});
                applied.status = true;
            }
            ("header", "Idempotency-Key") => {
                // The server trims it; a key of spaces is no key.
                *schema = json!({
                    "type": "string", "minLength": 1, "maxLength": facts.max_idempotency_key,
                    "pattern": "^[\\x21-\\x7e]([\\x20-\\x7e]*[\\x21-\\x7e])?$"
                });
                applied.idempotency_key = true;
            }
            _ => {}
        }
    }
}

/// The upload is the file's raw bytes, not a JSON array of integers (what
/// utoipa writes for `Vec<u8>`).
fn binary_model_body(operation: &mut Value, facts: &ContractFacts, applied: &mut Applied) {
    let Some(body) = operation.get_mut("requestBody") else { return };
    // Any content type is read the same way (the format is detected from the
    // bytes); the document names the one every client can send.
    let binary = json!({"schema": {"type": "string", "format": "binary", "maxLength": facts.max_model_bytes}});
    body["content"] = json!({ "application/octet-stream": binary });
    applied.model_body = true;
}

/// A download is the file's bytes, in whichever of the model types its
/// format is: a binary string, not the array of numbers `Vec<u8>` reads as.
fn binary_model_download(operation: &mut Value, facts: &ContractFacts, applied: &mut Applied) {
    let Some(content) = operation.pointer_mut("/responses/200/content").and_then(Value::as_object_mut) else {
        return;
    };
    for media in content.values_mut() {
        media["schema"] = json!({"type": "string", "format": "binary", "maxLength": facts.max_model_bytes});
    }
    applied.model_download = true;
}

/// What every client should know and no single operation says: who may do
/// what, the limits and the quotas, and the error shape.
fn house_rules(facts: &ContractFacts) -> String {
    format!(
        "**Keys.** A *seller* key uploads models, prices them and places orders; it reads and cancels \
         the jobs and orders of its seller, and uses only the models its seller uploaded. An *operator* \
         key reads every job and order, takes, completes, ships and cancels orders, and cancels only \
         the jobs it created. A *CRM* key sends CRM events, reads orders by id and only the jobs it \
         created. Only the key that created a pricing job cancels it; an order's job is cancelled with \
         its order.\n\n\
         **Limits.** A model body up to {} bytes and a JSON body up to the server's JSON limit; a declared \
         `Content-Length` over the limit is refused with 413 before the body is read. Ids up to {} and \
         names up to {} characters, without control characters (422 names the field).\n\n\
         **Quotas**, per key (settings `FARM_QUOTA_*`): new models an hour, upload bytes a day, pricing \
         jobs in flight; and a cap on uploads read at once. Over one: 429 with `Retry-After`.\n\n\
         **Errors** are JSON, `{{\"error\": {{\"code\", \"message\", \"details\"?}}}}`, for every 4xx and 5xx; \
         a 5xx never carries internal details.",
        facts.max_model_bytes,
        crate::text::MAX_ID_CHARS,
        crate::text::MAX_NAME_CHARS
    )
}

/// Text without control characters (what `crate::text::refusal` lets through).
const PRINTABLE: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$";

fn tighten_schema(name: &str, schema: &mut Value, facts: &ContractFacts, applied: &mut Applied) {
    let request = matches!(name, "CreateOrder" | "CreateJob" | "OrderItem");
    let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) else { return };
    for (field, property) in properties.iter_mut() {
        match (request, field.as_str()) {
            (true, "quantity") => {
                *property = json!({"type": "integer", "minimum": 1, "maximum": facts.max_quantity, "default": 1});
                applied.quantity = true;
            }
            (true, "material") => {
                *property = json!({"type": "string", "enum": facts.materials, "description": "A material of the loaded price book."});
                applied.material = true;
            }
            (true, "colour") => {
                let mut colours: Vec<Value> = facts.colours.iter().map(|c| json!(c)).collect();
                colours.push(Value::Null);
                *property = json!({"type": ["string", "null"], "enum": colours, "description": "One of the material's colours."});
                applied.colour = true;
            }
            (true, "customer") => {
                *property = json!({
                    "type": ["string", "null"], "maxLength": crate::text::MAX_NAME_CHARS, "pattern": PRINTABLE,
                    "description": "The seller's customer: printable text, no control characters.",
                });
            }
            (true, "items") => {
                if let Some(items) = property.as_object_mut() {
                    items.insert("minItems".into(), json!(1));
                    items.insert("maxItems".into(), json!(facts.max_order_parts));
                }
            }
            (true, "model_id") => {
                *property = json!({"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "The `model_id` `POST /v1/models` answered."});
                applied.ids = true;
            }
            _ => {}
        }
    }
    if name == "CrmEventBody" {
        properties.insert("type".into(), json!({"type": "string", "enum": ["approved", "cancelled"]}));
        for id in ["event_id", "order_id"] {
            properties.insert(
                id.into(),
                json!({"type": "string", "minLength": 1, "maxLength": crate::text::MAX_ID_CHARS, "allOf": [{"pattern": "\\S"}, {"pattern": PRINTABLE}]}),
            );
        }
        applied.crm_type = true;
    }
    if request {
        // A colour must be one the chosen material offers: one branch per
        // material, so a generator (or a reader) sees the pairs that work.
        let branches: Vec<Value> = facts
            .colours_of
            .iter()
            .map(|(material, colours)| {
                let mut allowed: Vec<Value> = colours.iter().map(|c| json!(c)).collect();
                allowed.push(Value::Null);
                json!({"properties": {"material": {"const": material}, "colour": {"enum": allowed}}})
            })
            .collect();
        if name == "CreateOrder" {
            // One part (`model_id` and `material`), or several (`items`,
            // and none of the single part's fields), never both.
            let nothing = json!({"type": "null"});
            schema["oneOf"] = json!([
                {
                    "title": "One part",
                    "required": ["model_id", "material"],
                    "properties": {"items": nothing},
                    "oneOf": branches,
                },
                {
                    "title": "Several parts",
                    "required": ["items"],
                    "properties": {
                        "items": {"type": "array"},
                        "model_id": nothing, "material": nothing, "colour": nothing, "quantity": {"const": 1},
                    },
                },
            ]);
        } else {
            schema["oneOf"] = Value::Array(branches);
        }
    }
}

/// Links from what a response creates to the operations that use it, so a
/// stateful run follows an order or a job from its creation.
fn add_links(doc: &mut Value, applied: &mut Applied) {
    let links = [
        ("/v1/orders", "post", "201", "order_id", &["get_order", "cancel_order"][..]),
        ("/v1/pricing-jobs", "post", "202", "job_id", &["get_job", "cancel_job"][..]),
        ("/v1/pricing-jobs", "post", "201", "job_id", &["get_job", "cancel_job"][..]),
    ];
    for (path, method, status, field, targets) in links {
        let pointer = format!("/paths/{}/{method}/responses/{status}", path.replace('/', "~1"));
        let Some(response) = doc.pointer_mut(&pointer).and_then(Value::as_object_mut) else { continue };
        let entry = response.entry("links").or_insert_with(|| json!({}));
        for target in targets {
            entry[*target] = json!({
                "operationId": target,
                "parameters": { field: format!("$response.body#/{field}") },
            });
        }
        applied.links = true;
    }
}

/// Gives every client error the JSON shape of [`ErrorBody`]. Handlers answer
/// with it already; this catches what axum answers before a handler runs
/// (an unknown route, a wrong method, a query string that does not parse, a
/// body over the limit) and would otherwise send as plain text or nothing.
pub(crate) async fn json_client_errors(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !status.is_client_error() || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // axum's rejection texts are short; anything longer is cut, not held.
    let text = axum::body::to_bytes(body, 4096).await.map(|b| String::from_utf8_lossy(&b).trim().to_string());
    let code = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        _ => "bad_request",
    };
    let message = match (status, text) {
        (StatusCode::NOT_FOUND, _) => format!("no route for {method} {path}"),
        (StatusCode::METHOD_NOT_ALLOWED, _) => format!("{method} is not allowed on {path}"),
        (_, Ok(text)) if !text.is_empty() => text,
        _ => status.canonical_reason().unwrap_or("bad request").to_string(),
    };
    let body = ErrorBody { error: ErrorDetail { code: code.into(), message, details: None } };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let json = serde_json::to_vec(&body).expect("error bodies always serialize");
    let mut response = Response::from_parts(parts, Body::from(json));
    *response.status_mut() = status;
    response.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> ContractFacts {
        ContractFacts::of(&calculator::PriceBook::builtin(), 1 << 20, 20)
    }

    #[test]
    fn every_rule_applies_to_the_real_document() {
        // Builds the document the server serves; `exact_document` panics if
        // a rule found nothing, so a renamed field fails here.
        let openapi = crate::routes::document();
        let doc = exact_document(&openapi, &facts());
        let limit = doc.pointer("/paths/~1v1~1orders/get/parameters").unwrap().as_array().unwrap();
        let limit = limit.iter().find(|p| p["name"] == "limit").unwrap();
        assert_eq!(limit["schema"]["minimum"], 1);
        assert_eq!(limit["schema"]["maximum"], crate::text::MAX_PAGE);
        let quantity = doc.pointer("/components/schemas/CreateOrder/properties/quantity").unwrap();
        assert_eq!(quantity["maximum"], calculator::PriceBook::builtin().max_quantity);
        let material = doc.pointer("/components/schemas/CreateJob/properties/material/enum").unwrap();
        assert!(material.as_array().unwrap().iter().any(|m| m == "pla"), "{material}");
        let items = doc.pointer("/components/schemas/CreateOrder/properties/items").unwrap();
        assert_eq!((&items["minItems"], &items["maxItems"]), (&json!(1), &json!(20)), "{items}");
        let part = doc.pointer("/components/schemas/OrderItem/properties/quantity/maximum").unwrap();
        assert_eq!(part, calculator::PriceBook::builtin().max_quantity);
        let body =
            doc.pointer("/paths/~1v1~1models/post/requestBody/content/application~1octet-stream/schema").unwrap();
        assert_eq!(body["format"], "binary");
    }

    #[test]
    #[should_panic(expected = "found nothing to apply to")]
    fn a_rule_without_a_target_fails_loudly() {
        let empty = utoipa::openapi::OpenApiBuilder::new().build();
        exact_document(&empty, &facts());
    }
}
