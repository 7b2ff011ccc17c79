//! The pages' side of the API: a key exchanged for a session cookie with a
//! CSRF token, the reference data with its ETag, the pages and their hashed
//! assets, order changes streamed to consoles (across replicas through
//! Redis), the list's filters, releasing a taken order, and a model's file.

use std::sync::Arc;
use std::time::Duration;

use api::web::WebSettings;
use api::{ApiSettings, Application, Services};
use reqwest::header::{CACHE_CONTROL, COOKIE, ETAG, IF_NONE_MATCH, SET_COOKIE};
use scheduler::{BlobSettings, BlobStore, Lane, Pricing};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::helpers::{TestApp, cube_stl, spawn_farm, test_worker};
use crate::services;

async fn farm_with(web: WebSettings) -> TestApp {
    spawn_farm(ApiSettings { web, ..ApiSettings::default() }, vec![test_worker(Lane::Fast)]).await
}

/// Signs in with `key`: the cookie header to send back and the session.
async fn sign_in(app: &TestApp, key: &str) -> (String, Value) {
    let response = app.http.post(format!("{}/v1/session", app.base)).json(&json!({ "key": key })).send().await.unwrap();
    assert_eq!(response.status(), 201);
    // It names who is signed in and the CSRF token: nothing may cache it.
    assert_eq!(response.headers()["cache-control"], "no-store");
    let cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_string();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="] {
        assert!(cookie.contains(part), "{cookie} lacks {part}");
    }
    let pair = cookie.split(';').next().unwrap().to_string();
    (pair, response.json().await.unwrap())
}

async fn with_cookie(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    cookie: &str,
    csrf: Option<&str>,
    body: Option<reqwest::Body>,
) -> (u16, Value) {
    let mut request = app.http.request(method, format!("{}{path}", app.base)).header(COOKIE, cookie);
    if let Some(token) = csrf {
        request = request.header("x-csrf-token", token);
    }
    if let Some(body) = body {
        request = request.header("content-type", "application/json").body(body);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_key_becomes_a_session_and_state_changing_calls_need_its_csrf_token() {
    let app = farm_with(WebSettings::default()).await;
    let (cookie, session) = sign_in(&app, &app.seller).await;
    assert_eq!((session["kind"].as_str(), session["name"].as_str()), (Some("seller"), Some("acme")));
    let csrf = session["csrf_token"].as_str().unwrap().to_string();
    assert!(!cookie.contains(&app.seller), "the cookie is not the key");

    let (status, current) = with_cookie(&app, reqwest::Method::GET, "/v1/session", &cookie, None, None).await;
    assert_eq!((status, &current["csrf_token"]), (200, &session["csrf_token"]));
    // Reading needs no token; writing does.
    let (status, _) = with_cookie(&app, reqwest::Method::GET, "/v1/orders", &cookie, None, None).await;
    assert_eq!(status, 200);
    let upload = || Some(reqwest::Body::from(cube_stl(10.0)));
    let (status, refused) = with_cookie(&app, reqwest::Method::POST, "/v1/models", &cookie, None, upload()).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (403, Some("forbidden")), "{refused}");
    let (status, _) = with_cookie(&app, reqwest::Method::POST, "/v1/models", &cookie, Some("wrong"), upload()).await;
    assert_eq!(status, 403);
    let (status, model) = with_cookie(&app, reqwest::Method::POST, "/v1/models", &cookie, Some(&csrf), upload()).await;
    assert_eq!(status, 201, "{model}");

    // A CRM key has no session; a wrong key none either; a bearer key still
    // works alongside any cookie.
    let response =
        app.http.post(format!("{}/v1/session", app.base)).json(&json!({ "key": app.crm })).send().await.unwrap();
    assert_eq!(response.status(), 403);
    let response = app
        .http
        .post(format!("{}/v1/session", app.base))
        .json(&json!({ "key": "farm_seller_x.y" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let response = app
        .http
        .post(format!("{}/v1/session", app.base))
        .body("not json")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let (status, _) = app.get_as(&app.seller, "/v1/orders").await;
    assert_eq!(status, 200);

    // Signing out needs the token, ends the session and clears the cookie.
    let (status, _) = with_cookie(&app, reqwest::Method::DELETE, "/v1/session", &cookie, None, None).await;
    assert_eq!(status, 403);
    let response = app
        .http
        .delete(format!("{}/v1/session", app.base))
        .header(COOKIE, &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert!(response.headers()[SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));
    let (status, ended) = with_cookie(&app, reqwest::Method::GET, "/v1/orders", &cookie, None, None).await;
    assert_eq!(status, 401, "{ended}");
    let (status, _) = with_cookie(&app, reqwest::Method::GET, "/v1/session", &cookie, None, None).await;
    assert_eq!(status, 401);
    app.stop().await;
}

#[tokio::test]
async fn a_session_dies_with_its_key_and_a_key_holds_a_bounded_number_of_sessions() {
    let app = farm_with(WebSettings { max_sessions_per_key: 2, ..WebSettings::default() }).await;
    let (first, _) = sign_in(&app, &app.operator).await;
    let (second, _) = sign_in(&app, &app.operator).await;
    let (third, _) = sign_in(&app, &app.operator).await;
    let status = |cookie: String| {
        let app = &app;
        async move { with_cookie(app, reqwest::Method::GET, "/v1/session", &cookie, None, None).await.0 }
    };
    // The oldest was ended when the third began.
    assert_eq!((status(first).await, status(second.clone()).await, status(third.clone()).await), (401, 200, 200));
    let key_id = app.operator.trim_start_matches("farm_operator_").split('.').next().unwrap().to_string();
    assert!(app.store.revoke_key(&key_id, 2).await.unwrap());
    // Within the few seconds a checked session is remembered.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while status(third.clone()).await != 401 {
        assert!(tokio::time::Instant::now() < deadline, "a revoked key's session lives on");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn the_reference_data_has_an_etag_and_a_matching_request_gets_304() {
    let app = farm_with(WebSettings::default()).await;
    let response = app.http.get(format!("{}/v1/reference", app.base)).bearer_auth(&app.seller).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let etag = response.headers()[ETAG].to_str().unwrap().to_string();
    assert!(response.headers()[CACHE_CONTROL].to_str().unwrap().contains("no-cache"));
    let document: Value = response.json().await.unwrap();
    for key in ["materials", "colours", "machines", "order_statuses", "price_book_version", "currency"] {
        assert!(!document[key].is_null(), "no {key}: {document}");
    }
    assert!(document["materials"].as_array().unwrap().iter().any(|m| m["id"] == "pla"));
    let again = |tag: String| {
        let app = &app;
        async move {
            let request = app.http.get(format!("{}/v1/reference", app.base)).bearer_auth(&app.seller);
            let response = request.header(IF_NONE_MATCH, tag).send().await.unwrap();
            (response.status().as_u16(), response.bytes().await.unwrap().len())
        }
    };
    assert_eq!(again(etag.clone()).await, (304, 0));
    assert_eq!(again("\"stale\"".into()).await.0, 200);
    let response = app.http.get(format!("{}/v1/reference", app.base)).send().await.unwrap();
    assert_eq!(response.status(), 401, "it is behind a key or a session");
    app.stop().await;
}

#[tokio::test]
async fn the_pages_name_hashed_assets_that_are_cached_for_a_year() {
    let app = farm_with(WebSettings::default()).await;
    for (page, script) in [("/console/", "js/console.js"), ("/quote/", "js/quote.js")] {
        let response = app.http.get(format!("{}{page}", app.base)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{page}");
        assert_eq!(response.headers()[CACHE_CONTROL], "no-cache");
        let policy = response.headers()["content-security-policy"].to_str().unwrap().to_string();
        assert!(policy.contains("script-src 'self' 'sha256-"), "{policy}");
        let html = response.text().await.unwrap();
        assert!(html.contains("name=\"key\""), "{page} has no sign-in field");
        let url = api::web::assets::catalogue().url(script).unwrap().to_string();
        assert!(html.contains(&url), "{page} does not name {url}");
        let asset = app.http.get(format!("{}{url}", app.base)).send().await.unwrap();
        assert_eq!(asset.status(), 200);
        assert_eq!(asset.headers()[CACHE_CONTROL], "public, max-age=31536000, immutable");
        assert!(asset.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
    }
    let stale = app.http.get(format!("{}/assets/js/console.0000000000.js", app.base)).send().await.unwrap();
    assert_eq!(stale.status(), 404);
    let redirect = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let response = redirect.get(format!("{}/console", app.base)).send().await.unwrap();
    assert_eq!((response.status().as_u16(), response.headers()["location"].to_str().unwrap()), (308, "/console/"));
    app.stop().await;
}

/// Reads server-sent events from `path` until one of `event` whose data
/// contains `needle` arrives; returns its data.
struct EventStream {
    response: reqwest::Response,
    buffer: String,
}

impl EventStream {
    async fn open(base: &str, token: &str) -> Self {
        Self::open_with(reqwest::Client::new().get(format!("{base}/v1/events")).bearer_auth(token)).await
    }

    async fn open_with(request: reqwest::RequestBuilder) -> Self {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        let mut stream = Self { response, buffer: String::new() };
        stream.next("ready", &[]).await;
        stream
    }

    /// Reads until the server ends the stream; false if it is still open
    /// after `patience`.
    async fn ends_within(mut self, patience: Duration) -> bool {
        let drain = async { while let Ok(Some(_)) = self.response.chunk().await {} };
        tokio::time::timeout(patience, drain).await.is_ok()
    }

    /// The next `event` whose data holds every one of `needles`.
    async fn next(&mut self, event: &str, needles: &[&str]) -> String {
        let wanted = format!("event: {event}\n");
        let read = async {
            loop {
                while let Some(end) = self.buffer.find("\n\n") {
                    let message: String = self.buffer.drain(..end + 2).collect();
                    if message.starts_with(&wanted) && needles.iter().all(|n| message.contains(n)) {
                        return message;
                    }
                }
                let chunk = self.response.chunk().await.unwrap().expect("the stream ended");
                self.buffer.push_str(&String::from_utf8_lossy(&chunk));
            }
        };
        tokio::time::timeout(Duration::from_secs(15), read)
            .await
            .unwrap_or_else(|_| panic!("no `{event}` with {needles:?}"))
    }
}

async fn approved_order(app: &TestApp) -> String {
    let (_, model) = app.post_model(cube_stl(12.0)).await;
    let (status, order) =
        app.post_as(&app.seller, "/v1/orders", json!({ "model_id": model["model_id"], "material": "pla" })).await;
    assert_eq!(status, 201, "{order}");
    let order_id = order["order_id"].as_str().unwrap().to_string();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while app.get_as(&app.operator, &format!("/v1/orders/{order_id}")).await.1["status"] != "PRICED" {
        assert!(tokio::time::Instant::now() < deadline, "never priced");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let event =
        json!({ "event_id": format!("a-{order_id}"), "order_id": order_id, "type": "approved", "occurred_at_ms": 1 });
    let (status, answer) = app.post_as(&app.crm, "/v1/crm/events", event).await;
    assert_eq!(status, 200, "{answer}");
    order_id
}

#[tokio::test]
async fn every_change_reaches_an_open_stream_and_streams_are_bounded() {
    let app = farm_with(WebSettings { max_event_streams: 1, ..WebSettings::default() }).await;
    let mut stream = EventStream::open(&app.base, &app.operator).await;
    // The bound: a second stream is refused while the first is open.
    let refused = app.http.get(format!("{}/v1/events", app.base)).bearer_auth(&app.operator).send().await.unwrap();
    assert_eq!(refused.status(), 503);
    let order_id = approved_order(&app).await;
    let approved = stream.next("order", &[&order_id, "\"status\":\"MANUFACTURING_APPROVED\""]).await;
    assert!(approved.contains("MANUFACTURING_APPROVED"), "{approved}");
    let (status, _) = app.post_as(&app.operator, &format!("/v1/orders/{order_id}/take"), json!({})).await;
    assert_eq!(status, 200);
    let taken = stream.next("order", &[&order_id, "\"status\":\"MANUFACTURING_STARTED\""]).await;
    assert!(taken.contains("MANUFACTURING_STARTED") && taken.contains("\"assignee\":\"Ada\""), "{taken}");
    // Sellers get no stream.
    let seller = app.http.get(format!("{}/v1/events", app.base)).bearer_auth(&app.seller).send().await.unwrap();
    assert_eq!(seller.status(), 403);
    // Shutdown ends the open stream, so the server can stop.
    tokio::time::timeout(Duration::from_secs(20), app.stop()).await.expect("an open stream held the shutdown");
}

#[tokio::test]
async fn a_take_on_one_replica_reaches_a_console_on_another_through_redis() {
    let Some(redis) = redis_url().await else { return };
    let web = WebSettings {
        redis_url: Some(redis),
        channel: format!("test-{}:orders:changes", uuid::Uuid::new_v4().simple()),
        ..WebSettings::default()
    };
    let a = farm_with(web.clone()).await;
    // Replica B: the same database and queue, its own process state.
    let services = Services {
        store: a.store.clone(),
        broker: a.broker.clone(),
        blobs: BlobStore::open(&BlobSettings::Local { dir: a.data_dir().into() }).await.unwrap(),
        topology: a.topology.clone(),
        pricing: Arc::new(Pricing::default()),
        cache: api::orders::cache::OrderCache::memory(),
    };
    let settings = ApiSettings { listen: "127.0.0.1:0".parse().unwrap(), web, ..ApiSettings::default() };
    let b = Application::build(settings, services).await.unwrap();
    let b_base = format!("http://{}", b.local_addr());
    let stop_b = CancellationToken::new();
    let replica_b = tokio::spawn(b.run_until_stopped(stop_b.clone()));
    let order_id = approved_order(&a).await;
    let mut on_b = EventStream::open(&b_base, &a.operator).await;
    // B subscribes in the background: retry the change until it relays one.
    let mut relayed = None;
    for _ in 0..50 {
        let (status, taken) = a.post_as(&a.operator, &format!("/v1/orders/{order_id}/take"), json!({})).await;
        assert_eq!(status, 200, "{taken}");
        let wait =
            tokio::time::timeout(Duration::from_millis(500), on_b.next("order", &[&order_id, "MANUFACTURING_STARTED"]))
                .await;
        if let Ok(message) = wait {
            relayed = Some(message);
            break;
        }
        let (status, _) = a.post_as(&a.operator, &format!("/v1/orders/{order_id}/release"), json!({})).await;
        assert_eq!(status, 200);
    }
    let message = relayed.expect("replica B never relayed replica A's take");
    assert!(message.contains(&order_id) && message.contains("\"assignee\":\"Ada\""), "{message}");
    stop_b.cancel();
    replica_b.await.unwrap().unwrap();
    a.stop().await;
}

async fn mint(app: &TestApp, kind: api::auth::KeyKind, name: &str) -> String {
    let minted = api::auth::mint(kind, name, 1);
    app.store.insert_key(&minted.row).await.unwrap();
    minted.token
}

async fn redis_url() -> Option<String> {
    let url = std::env::var("FARM_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    let authority = url.trim_start_matches("redis://").trim_end_matches('/').to_string();
    match tokio::net::TcpStream::connect(&authority).await {
        Ok(_) => Some(url),
        Err(e) => services::missing("Redis", &e.to_string()),
    }
}

#[tokio::test]
async fn the_list_filters_by_material_machine_and_assignee_and_a_taken_order_can_be_released() {
    let app = farm_with(WebSettings { max_filter_scan: 1, ..WebSettings::default() }).await;
    let first = approved_order(&app).await;
    let second = approved_order(&app).await;
    let list = |query: &str| {
        let app = &app;
        let path = format!("/v1/operator/orders?{query}");
        async move {
            let (status, page) = app.get_as(&app.operator, &path).await;
            assert_eq!(status, 200, "{page}");
            page
        }
    };
    let ids = |page: &Value| -> Vec<String> {
        page["orders"].as_array().unwrap().iter().map(|o| o["order_id"].as_str().unwrap().to_string()).collect()
    };
    let all = list("").await;
    assert_eq!(ids(&all), vec![second.clone(), first.clone()]);
    let row = &all["orders"][0];
    let machine = row["machine"].as_str().expect("a priced order names its machine").to_string();
    assert!(row["size_mm"][0].as_f64().is_some_and(|s| (s - 12.0).abs() < 1e-6), "{row}");
    assert!(row["print_time_s"].as_f64().is_some_and(|s| s > 0.0), "{row}");
    // A bound of one order looked at per request: a page of one, and a
    // cursor to go on from.
    let page = list(&format!("material=pla&machine={machine}")).await;
    assert_eq!(ids(&page), vec![second.clone()]);
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let rest = list(&format!("material=pla&machine={machine}&cursor={cursor}")).await;
    assert_eq!(ids(&rest), vec![first.clone()]);
    assert!(ids(&list("material=petg").await).is_empty());
    assert!(ids(&list("machine=nope").await).is_empty());

    let (status, _) = app.post_as(&app.operator, &format!("/v1/orders/{first}/take"), json!({})).await;
    assert_eq!(status, 200);
    let mine = list("status=MANUFACTURING_STARTED&assignee=Ada").await;
    assert_eq!(ids(&mine), vec![first.clone()]);
    assert!(ids(&list("status=MANUFACTURING_STARTED&assignee=Bob").await).is_empty());
    // Only the taker may release it; then it is back on the list, unassigned.
    let bob = mint(&app, api::auth::KeyKind::Operator, "Bob").await;
    let (status, _) = app.post_as(&bob, &format!("/v1/orders/{first}/release"), json!({})).await;
    assert_eq!(status, 403);
    let (status, released) = app.post_as(&app.operator, &format!("/v1/orders/{first}/release"), json!({})).await;
    assert_eq!(
        (status, released["status"].as_str(), &released["assignee"]),
        (200, Some("MANUFACTURING_APPROVED"), &Value::Null)
    );
    assert_eq!(ids(&list("").await), vec![second.clone(), first.clone()]);
    let (status, again) = app.post_as(&app.operator, &format!("/v1/orders/{first}/release"), json!({})).await;
    assert_eq!(status, 409, "{again}");
    app.stop().await;
}

#[tokio::test]
async fn an_event_stream_ends_with_its_session_or_its_key() {
    let app = farm_with(WebSettings { event_recheck: Duration::from_millis(200), ..WebSettings::default() }).await;
    // A page's stream, on its session cookie: signing out ends it.
    let (cookie, session) = sign_in(&app, &app.operator).await;
    let on_cookie =
        EventStream::open_with(app.http.get(format!("{}/v1/events", app.base)).header(COOKIE, &cookie)).await;
    let csrf = session["csrf_token"].as_str().unwrap();
    let (status, _) = with_cookie(&app, reqwest::Method::DELETE, "/v1/session", &cookie, Some(csrf), None).await;
    assert_eq!(status, 204);
    assert!(on_cookie.ends_within(Duration::from_secs(15)).await, "a signed-out session's stream lives on");
    // A key's stream: revoking the key ends it (once the key check's
    // short memory has passed).
    let on_key = EventStream::open(&app.base, &app.operator).await;
    let key_id = app.operator.trim_start_matches("farm_operator_").split('.').next().unwrap().to_string();
    assert!(app.store.revoke_key(&key_id, 2).await.unwrap());
    assert!(on_key.ends_within(Duration::from_secs(30)).await, "a revoked key's stream lives on");
    app.stop().await;
}

#[tokio::test]
async fn one_key_cannot_take_every_event_stream() {
    let app =
        farm_with(WebSettings { max_event_streams: 4, max_event_streams_per_key: 2, ..WebSettings::default() }).await;
    let _first = EventStream::open(&app.base, &app.operator).await;
    let _second = EventStream::open(&app.base, &app.operator).await;
    let third = app.http.get(format!("{}/v1/events", app.base)).bearer_auth(&app.operator).send().await.unwrap();
    assert_eq!(third.status(), 503, "a third stream of one key");
    let other = mint(&app, api::auth::KeyKind::Operator, "Bob").await;
    let _bob = EventStream::open(&app.base, &other).await;
    app.stop().await;
}

#[tokio::test]
async fn a_key_that_signs_in_too_often_is_told_to_wait() {
    let app = farm_with(WebSettings { max_sign_ins_per_minute: 2, ..WebSettings::default() }).await;
    sign_in(&app, &app.operator).await;
    sign_in(&app, &app.operator).await;
    let response =
        app.http.post(format!("{}/v1/session", app.base)).json(&json!({ "key": app.operator })).send().await.unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_requests", "{body}");
    // Another key is not held back by it.
    sign_in(&app, &app.seller).await;
    app.stop().await;
}
