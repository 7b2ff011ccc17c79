//! The HTTP contract: status codes, JSON error bodies, and the job's life.

use api::ApiSettings;
use serde_json::json;

use crate::helpers::{TestApp, cube_stl, spawn_app, spawn_app_with};

#[tokio::test]
async fn a_model_is_priced_through_the_queue() {
    let app = spawn_app().await;
    let (status, model) = app.post_model(cube_stl(10.0)).await;
    assert_eq!(status, 201, "{model}");
    assert_eq!((model["triangles"].as_u64(), model["created"].as_bool()), (Some(12), Some(true)));
    let (status, accepted) =
        app.post_job(json!({"model_id": model["model_id"], "material": "pla", "quantity": 2})).await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["status"], "queued");
    let job = app.wait_for_job(accepted["job_id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["quote"]["volume_mm3"], 1000.0);
    assert_eq!(job["quote"]["quantity"], 2);
    assert_eq!(job["error"], serde_json::Value::Null);
    app.stop().await;
}

#[tokio::test]
async fn models_in_3mf_and_obj_are_found_by_content_and_priced() {
    let app = spawn_app().await;
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data");
    for (file, format) in [("cube_20mm.3mf", "3mf"), ("cube_20mm.obj", "obj")] {
        let (status, model) = app.post_model(std::fs::read(data.join(file)).unwrap()).await;
        assert_eq!(status, 201, "{file}: {model}");
        assert_eq!((model["format"].as_str(), model["triangles"].as_u64()), (Some(format), Some(12)), "{file}");
        let (status, accepted) = app.post_job(json!({"model_id": model["model_id"], "material": "pla"})).await;
        assert_eq!(status, 202, "{accepted}");
        let job = app.wait_for_job(accepted["job_id"].as_str().unwrap()).await;
        assert_eq!(job["status"], "succeeded", "{file}: {job}");
        assert_eq!(job["quote"]["volume_mm3"], 8000.0, "{file}");
    }
    // A zip that is no 3MF package is a 422 with the reason, not a 500.
    let (status, body) = app.post_model(b"PK\x03\x04 not really a zip".to_vec()).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("3MF"), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn a_repeated_request_is_answered_from_the_quote_cache() {
    let app = spawn_app().await;
    let (_, model) = app.post_model(cube_stl(10.0)).await;
    let request = json!({"model_id": model["model_id"], "material": "pla", "quantity": 3});
    let (status, first) = app.post_job(request.clone()).await;
    assert_eq!(status, 202, "{first}");
    let priced = app.wait_for_job(first["job_id"].as_str().unwrap()).await;
    assert_eq!(priced["status"], "succeeded", "{priced}");

    let (status, second) = app.post_job(request).await;
    assert_eq!((status, second["status"].as_str()), (201, Some("succeeded")), "{second}");
    let (_, answered) = app.get(&format!("/v1/pricing-jobs/{}", second["job_id"].as_str().unwrap())).await;
    assert_eq!(answered["quote"], priced["quote"]);
    assert_ne!(answered["job_id"], priced["job_id"]);

    // Another quantity is another quote.
    let (status, other) = app.post_job(json!({"model_id": model["model_id"], "material": "pla", "quantity": 4})).await;
    assert_eq!((status, other["status"].as_str()), (202, Some("queued")), "{other}");
    app.stop().await;
}

#[tokio::test]
async fn the_same_bytes_give_the_same_model_id() {
    let app = spawn_app().await;
    let (_, first) = app.post_model(cube_stl(10.0)).await;
    let (status, second) = app.post_model(cube_stl(10.0)).await;
    assert_eq!(status, 201);
    assert_eq!(first["model_id"], second["model_id"]);
    assert_eq!(second["created"], false);
    let (_, other) = app.post_model(cube_stl(11.0)).await;
    assert_ne!(first["model_id"], other["model_id"]);
    app.stop().await;
}

#[tokio::test]
async fn bad_models_get_422_with_a_reason() {
    let app = spawn_app().await;
    let cube = cube_stl(10.0);
    let cases: [(Vec<u8>, &str); 4] = [
        (b"this is not a model".to_vec(), "not a model file (binary or ASCII STL, 3MF or OBJ)"),
        (cube[..cube.len() - 10].to_vec(), "truncated"),
        (b"solid x\nfacet normal 0 0 1\nouter loop\n".to_vec(), "unclosed"),
        (b"solid empty\nendsolid empty\n".to_vec(), "no triangles"),
    ];
    for (body, reason) in cases {
        let (status, error) = app.post_model(body).await;
        assert_eq!(status, 422, "{error}");
        assert_eq!(error["error"]["code"], "invalid_model");
        assert!(error["error"]["message"].as_str().unwrap().contains(reason), "{error}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_model_over_the_size_limit_gets_413() {
    let app = spawn_app_with(ApiSettings { max_model_bytes: 1000, ..ApiSettings::default() }).await;
    let (status, error) = app.post_model(cube_stl(1.0)).await;
    assert_eq!(status, 201, "684 bytes fit: {error}");
    let big = mesh::write_binary_stl(&mesh::uv_sphere(1.0, 8, 8));
    assert!(big.len() > 1000);
    let (status, error) = app.post_model(big).await;
    assert_eq!(status, 413, "{error}");
    assert_eq!(error["error"]["code"], "payload_too_large");
    app.stop().await;
}

#[tokio::test]
async fn job_requests_are_validated() {
    let app = spawn_app().await;
    let (_, model) = app.post_model(cube_stl(10.0)).await;
    let model_id = model["model_id"].clone();
    let cases = [
        (json!({"model_id": "f00d", "material": "pla"}), 404, "not_found"),
        (json!({"model_id": model_id, "material": "unobtainium"}), 422, "unprocessable"),
        (json!({"model_id": model_id, "material": "pla", "quantity": 0}), 422, "unprocessable"),
        (json!({"model_id": model_id, "material": "pla", "quantity": -1}), 422, "unprocessable"),
        (json!({"material": "pla"}), 422, "unprocessable"),
    ];
    for (body, status, code) in cases {
        let (got, error) = app.post_job(body.clone()).await;
        assert_eq!((got, error["error"]["code"].as_str()), (status, Some(code)), "{body} -> {error}");
    }
    let response = app
        .http
        .post(format!("{}/v1/pricing-jobs", app.base))
        .bearer_auth(&app.seller)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let error: serde_json::Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "bad_request");
    app.stop().await;
}

#[tokio::test]
async fn an_unknown_job_is_404_and_probes_answer() {
    let app = spawn_app().await;
    let (status, error) = app.get("/v1/pricing-jobs/no-such-job").await;
    assert_eq!((status, error["error"]["code"].as_str()), (404, Some("not_found")));
    assert_eq!(app.get("/healthz").await, (200, json!({"status": "ok"})));
    let (status, ready) = app.get("/readyz").await;
    assert_eq!(status, 200);
    assert_eq!((&ready["checks"]["database"], &ready["checks"]["broker"]), (&json!("ok"), &json!("ok")), "{ready}");
    let metrics = app.http.get(format!("{}/metrics", app.base)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("farm_http_requests_total"), "{metrics}");
    let foreign =
        metrics.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).find(|l| !l.starts_with("farm_"));
    assert_eq!(foreign, None, "every metric name starts with farm_");
    app.stop().await;
}

#[tokio::test]
async fn a_job_that_cannot_be_priced_fails_with_the_reason() {
    let app = spawn_app().await;
    // The model row exists but its bytes are gone from the store.
    let (_, model) = app.post_model(cube_stl(3.0)).await;
    let model_id = model["model_id"].as_str().unwrap();
    let blob = app.data_dir().join(format!("models/{model_id}.stl"));
    std::fs::remove_file(&blob).unwrap();
    let (_, accepted) = app.post_job(json!({"model_id": model_id, "material": "pla"})).await;
    let job = app.wait_for_job(accepted["job_id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error"]["kind"], "model_missing");
    assert_eq!(job["quote"], serde_json::Value::Null);
    app.stop().await;
}

/// Sends `head` (and nothing after it) on a raw connection and returns all
/// the server wrote before it closed the connection. The read has a generous
/// bound so a regression fails instead of hanging the suite.
async fn raw_exchange(base: &str, head: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(20), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the server kept the connection open: {}", String::from_utf8_lossy(&answer));
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_refused_before_the_body_arrives() {
    let app = spawn_app().await;
    // Three bytes of a declared terabyte: the server must not wait for the rest.
    let head = "POST /v1/models HTTP/1.1\r\nhost: farm\r\ncontent-length: 1000000000000\r\n\r\nabc";
    let answer = raw_exchange(&app.base, head).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"payload_too_large\""), "{answer}");
    let head =
        "POST /v1/orders HTTP/1.1\r\nhost: farm\r\ncontent-type: application/json\r\ncontent-length: 900000\r\n\r\n{";
    let answer = raw_exchange(&app.base, head).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "a JSON route has the JSON limit: {answer}");
    app.stop().await;
}

#[tokio::test]
async fn a_request_head_that_never_ends_is_closed_after_the_header_timeout() {
    let settings = ApiSettings {
        connections: api::serve::ConnectionLimits {
            header_read_timeout: std::time::Duration::from_millis(300),
            ..api::serve::ConnectionLimits::default()
        },
        ..ApiSettings::default()
    };
    let app = spawn_app_with(settings).await;
    // The head is never finished; `raw_exchange` fails if the server keeps
    // waiting for it.
    let answer = raw_exchange(&app.base, "GET /healthz HTTP/1.1\r\nhost: farm\r\nx-slow: ").await;
    assert!(!answer.contains("200 OK"), "{answer}");
    let (status, _) = app.get("/healthz").await;
    assert_eq!(status, 200, "the server still answers");
    app.stop().await;
}

#[tokio::test]
async fn connections_over_the_cap_wait_until_one_closes() {
    let settings = ApiSettings {
        connections: api::serve::ConnectionLimits { max_connections: 2, ..api::serve::ConnectionLimits::default() },
        ..ApiSettings::default()
    };
    let app = spawn_app_with(settings).await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let first = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let _second = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let waiting = tokio::spawn({
        let (http, url) = (reqwest::Client::new(), format!("{}/healthz", app.base));
        async move { http.get(url).send().await.map(|r| r.status().as_u16()) }
    });
    // Wait on the state: the server counts reaching its cap.
    let metrics = api::telemetry::metrics_handle();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while !metrics.render().contains("farm_http_connection_cap_reached_total") {
        assert!(tokio::time::Instant::now() < deadline, "the cap was never reached");
        tokio::task::yield_now().await;
    }
    assert!(!waiting.is_finished(), "a third connection was served past the cap of two");
    drop(first);
    assert_eq!(waiting.await.unwrap().unwrap(), 200, "served once a connection closed");
    app.stop().await;
}

#[tokio::test]
async fn invented_method_names_share_one_metrics_label() {
    let app = spawn_app().await;
    for name in ["BREW", "WHEN", "PROPFIND9"] {
        let method = reqwest::Method::from_bytes(name.as_bytes()).unwrap();
        let answer = app.http.request(method, format!("{}/healthz", app.base)).send().await.unwrap();
        assert_eq!(answer.status().as_u16(), 405);
    }
    let metrics = app.metrics().await;
    assert!(metrics.contains("method=\"other\""), "{metrics}");
    for name in ["BREW", "WHEN", "PROPFIND9"] {
        assert!(!metrics.contains(name), "{name} became a label value");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_model_belongs_to_its_uploader_and_its_id_says_nothing_about_other_uploads() {
    let app = spawn_app().await;
    let bytes = cube_stl(21.0);
    let (status, mine) = app.post_model(bytes.clone()).await;
    assert_eq!((status, mine["created"].as_bool()), (201, Some(true)), "{mine}");
    let other = crate::helpers::mint(&app, api::auth::KeyKind::Seller, "globex").await;
    let (status, theirs) =
        app.client.send(reqwest::Method::POST, "/v1/models", Some(&other), Some(bytes.clone().into()), false).await;
    assert_eq!((status, theirs["created"].as_bool()), (201, Some(true)), "a first upload for them: {theirs}");
    assert_ne!(theirs["model_id"], mine["model_id"], "their own handle");
    let (_, again) = app.post_model(bytes).await;
    assert_eq!((again["model_id"].clone(), again["created"].as_bool()), (mine["model_id"].clone(), Some(false)));
    // Nobody prices or orders a model that is not theirs.
    let body = json!({"model_id": mine["model_id"], "material": "pla"});
    let (status, refused) = app.post_as(&other, "/v1/pricing-jobs", body.clone()).await;
    assert_eq!(status, 404, "{refused}");
    let (status, refused) = app.post_as(&other, "/v1/orders", body.clone()).await;
    assert_eq!(status, 404, "{refused}");
    let (status, _) = app.post_job(body).await;
    assert_eq!(status, 202);
    app.stop().await;
}

#[tokio::test]
async fn a_model_is_downloaded_by_its_owner_and_operators_only_and_its_analysis_follows_its_price() {
    let app = spawn_app().await;
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data");
    let obj = std::fs::read(data.join("cube_20mm.obj")).unwrap();
    let (_, model) = app.post_model(obj.clone()).await;
    let id = model["model_id"].as_str().unwrap().to_string();
    let download = |token: String| {
        let request = app.http.get(format!("{}/v1/models/{id}", app.base)).bearer_auth(token);
        async move { request.send().await.unwrap() }
    };
    // The owner and an operator get the bytes as uploaded, typed by format.
    let other_key_of_the_seller = crate::helpers::mint(&app, api::auth::KeyKind::Seller, "acme").await;
    for token in [app.seller.clone(), app.operator.clone(), other_key_of_the_seller] {
        let answer = download(token).await;
        assert_eq!(answer.status(), 200);
        let header = |name: &str| answer.headers()[name].to_str().unwrap().to_string();
        assert_eq!(header("content-type"), "model/obj");
        assert_eq!(header("content-length"), obj.len().to_string());
        assert!(header("content-disposition").ends_with(&format!("{id}.obj\"")), "{}", header("content-disposition"));
        assert_eq!(answer.bytes().await.unwrap(), obj);
    }
    // Another seller and the CRM: it does not exist for them.
    for token in [crate::helpers::mint(&app, api::auth::KeyKind::Seller, "globex").await, app.crm.clone()] {
        let (status, body) = app.get_as(&token, &format!("/v1/models/{id}")).await;
        assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")), "{body}");
        let (status, _) = app.get_as(&token, &format!("/v1/models/{id}/analysis")).await;
        assert_eq!(status, 404);
    }
    let (status, body) = app.get("/v1/models/nope%00").await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = app.client.send(reqwest::Method::GET, &format!("/v1/models/{id}"), None, None, false).await;
    assert_eq!(status, 401);

    // Not priced yet: nothing is known of its mesh.
    let (status, body) = app.get(&format!("/v1/models/{id}/analysis")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("conflict")), "{body}");
    let (_, accepted) = app.post_job(json!({"model_id": id, "material": "pla"})).await;
    let job = app.wait_for_job(accepted["job_id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    for token in [app.seller.clone(), app.operator.clone()] {
        let (status, body) = app.get_as(&token, &format!("/v1/models/{id}/analysis")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!((body["format"].as_str(), body["triangles"].as_i64()), (Some("obj"), Some(12)));
        assert_eq!(body["analysis"], job["quote"]["analysis"]);
        assert_eq!(body["analysis"]["volume_mm3"], 8000.0);
    }
    app.stop().await;
}

#[tokio::test]
async fn a_key_over_its_quotas_gets_429_with_retry_after() {
    let settings = ApiSettings {
        quotas: api::quota::Quotas {
            uploads_per_hour: 2,
            jobs_in_flight: 1,
            concurrent_uploads: 1,
            ..api::quota::Quotas::default()
        },
        ..ApiSettings::default()
    };
    // No workers: jobs stay queued, in flight.
    let app = crate::helpers::spawn_farm(settings, vec![]).await;
    let retry_after = |answer: &reqwest::Response| {
        answer.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok())
    };
    // One upload being read holds the only upload slot.
    let hold = || async {
        use tokio::io::AsyncWriteExt;
        let mut stream = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://")).await.unwrap();
        let head = format!(
            "POST /v1/models HTTP/1.1\r\nhost: farm\r\nauthorization: Bearer {}\r\ncontent-length: 1000\r\n\r\nsolid",
            app.operator
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream
    };
    let upload = |token: &str, side: f32| {
        let request = app.http.post(format!("{}/v1/models", app.base)).bearer_auth(token);
        request.body(cube_stl(side)).send()
    };
    let mut held = hold().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let busy = loop {
        // The probe is the operator's, so what it uploads counts against
        // the operator's quota, not the seller's below.
        let answer = upload(&app.operator, 22.0).await.unwrap();
        if answer.status() == 429 {
            break answer;
        }
        // The probe took the slot first and the held upload was refused:
        // its connection has an answer. Hold the slot with a new one.
        let mut answered = [0u8; 64];
        if !matches!(held.try_read(&mut answered), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock) {
            held = hold().await;
        }
        assert!(std::time::Instant::now() < deadline, "the upload slot was never taken: {}", answer.status());
        tokio::task::yield_now().await;
    };
    assert_eq!(retry_after(&busy), Some(1));
    drop(held);

    // Two new models an hour; the third is refused.
    let mut models = Vec::new();
    for side in [23.0, 24.0] {
        let answer = loop {
            let answer = upload(&app.seller, side).await.unwrap();
            if answer.status() != 429 {
                break answer;
            }
            tokio::task::yield_now().await; // the dropped upload is still letting go of its slot
        };
        assert_eq!(answer.status(), 201);
        let body: serde_json::Value = answer.json().await.unwrap();
        models.push(body["model_id"].as_str().unwrap().to_string());
    }
    let over = upload(&app.seller, 25.0).await.unwrap();
    assert_eq!((over.status().as_u16(), retry_after(&over)), (429, Some(60)));
    let body: serde_json::Value = over.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_requests", "{body}");

    // One job in flight per key.
    let (status, _) = app.post_job(json!({"model_id": models[0], "material": "pla"})).await;
    assert_eq!(status, 202);
    let (status, refused) = app.post_job(json!({"model_id": models[1], "material": "pla"})).await;
    assert_eq!(status, 429, "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("quota is 1"), "{refused}");
    app.stop().await;
}

/// `POST /v1/models` with the body sent in `chunks` of chunked transfer
/// encoding, so no length is declared and the server only learns the size
/// as the bytes arrive.
async fn post_model_chunked(app: &TestApp, chunks: &[&[u8]]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/models HTTP/1.1\r\nhost: farm\r\nauthorization: Bearer {}\r\ntransfer-encoding: chunked\r\n\
         connection: close\r\n\r\n",
        app.seller
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for chunk in chunks {
        stream.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await.unwrap();
        // The server may answer 413 and close before the rest arrives.
        if stream.write_all(chunk).await.is_err() || stream.write_all(b"\r\n").await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(20), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "no answer: {}", String::from_utf8_lossy(&answer));
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn uploads_are_spooled_to_disk_and_the_spool_is_emptied_whatever_the_answer() {
    let spool = tempfile::tempdir().unwrap();
    let settings = ApiSettings { max_model_bytes: 4000, spool_dir: spool.path().into(), ..ApiSettings::default() };
    let app = spawn_app_with(settings).await;
    let spool_is_empty = || std::fs::read_dir(spool.path()).unwrap().next().is_none();

    // A model in three chunks, no length declared: stored, with the size
    // and the id of the whole.
    let cube = cube_stl(10.0);
    let (a, rest) = cube.split_at(100);
    let (b, c) = rest.split_at(300);
    let answer = post_model_chunked(&app, &[a, b, c]).await;
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert!(answer.contains(&format!("\"size_bytes\":{}", cube.len())), "{answer}");
    let (status, same) = app.post_model(cube.clone()).await;
    assert_eq!(status, 201);
    assert!(answer.contains(same["model_id"].as_str().unwrap()), "the id is the whole file's: {answer} vs {same}");
    assert!(spool_is_empty(), "a stored upload leaves nothing in the spool");

    // Past the limit with no length declared: 413 as soon as it passes.
    let big = vec![b'x'; 3000];
    let answer = post_model_chunked(&app, &[&big, &big, &big]).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(spool_is_empty(), "a refused upload leaves nothing in the spool");
    // Not a model: 422, and nothing left either.
    let answer = post_model_chunked(&app, &[b"solid nothing\nendsolid nothing\n"]).await;
    assert!(answer.starts_with("HTTP/1.1 422"), "{answer}");
    assert!(spool_is_empty());
    app.stop().await;
}

/// A request whose body stalls is answered 408 after the request timeout,
/// with the JSON error shape like every other client error.
#[tokio::test]
async fn a_stalled_body_gets_408_with_a_json_error() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let settings = ApiSettings { request_timeout: std::time::Duration::from_millis(300), ..ApiSettings::default() };
    let app = spawn_app_with(settings).await;
    // One byte of a declared hundred, then nothing.
    let mut stream = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://")).await.unwrap();
    let head = format!(
        "POST /v1/orders HTTP/1.1\r\nhost: farm\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\n\
         content-length: 100\r\nconnection: close\r\n\r\n{{",
        app.seller
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(20), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(read.is_ok(), "no answer: {answer}");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.to_lowercase().contains("content-type: application/json"), "{answer}");
    assert!(answer.contains("\"code\":\"request_timeout\""), "{answer}");
    app.stop().await;
}
