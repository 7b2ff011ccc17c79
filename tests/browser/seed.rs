//! A shop to test the pages against: `farm serve` on a fresh data folder,
//! keys for two operators, a seller and the CRM, orders approved for
//! manufacturing, and optionally many more orders of history, written
//! straight into its database before it starts (so the list cache is built
//! from all of them, as after a restart in production).

#![allow(clippy::print_stderr)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::Connection;

use crate::helpers::{Api, FarmProcess, mint_key, path_str, reference_cube};

/// Orders seeded by default; `FARM_BROWSER_ORDERS=240000` gives the
/// seeds' whole order table (BENCHMARKS.md).
const DEFAULT_ORDERS: usize = 2_000;

pub(crate) struct Shop {
    /// Kept for its lifetime: dropping it stops the farm.
    _farm: FarmProcess,
    pub(crate) addr: String,
    pub(crate) ada: String,
    pub(crate) bob: String,
    pub(crate) seller: Api,
    pub(crate) crm: Api,
    pub(crate) operator: Api,
    pub(crate) model_id: String,
    /// Orders in the database when the farm started.
    pub(crate) orders: usize,
    _data: tempfile::TempDir,
}

fn seed_orders() -> usize {
    std::env::var("FARM_BROWSER_ORDERS").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_ORDERS)
}

impl Shop {
    /// A farm with keys and, when `history`, the seeded orders.
    pub(crate) async fn open(history: bool) -> Self {
        let data = tempfile::tempdir().unwrap();
        let dir = path_str(data.path());
        let store = ["--data-dir", dir.as_str()];
        let ada = mint_key("operator", "Ada", &store, &[]);
        let bob = mint_key("operator", "Bob", &store, &[]);
        let seller = mint_key("seller", "acme", &store, &[]);
        let crm = mint_key("crm", "crm", &store, &[]);
        let mut farm = start(&dir);
        let mut addr = farm.wait_for_listening();
        let seller_api = Api::new(&addr, &seller);
        let (status, model) = seller_api.upload(reference_cube().0).await;
        assert_eq!(status, 201, "{model}");
        let model_id = model["model_id"].as_str().unwrap().to_string();
        let count = if history { seed_orders() } else { 0 };
        if count > 0 {
            // A real quote to copy into every seeded order.
            let order = priced_order(&seller_api, &model_id).await;
            let quote = seller_api.get(&format!("/v1/orders/{order}")).await.1["quote"].clone();
            assert!(quote.is_object(), "no quote on {order}");
            assert_eq!(farm.terminate(), 0);
            let started = Instant::now();
            insert_history(&dir, &model_id, &quote, count).await;
            eprintln!("seeded {count} orders in {:.1} s", started.elapsed().as_secs_f64());
            farm = start(&dir);
            addr = farm.wait_for_listening();
        }
        let shop = Self {
            seller: Api::new(&addr, &seller),
            operator: Api::new(&addr, &ada),
            crm: Api::new(&addr, &crm),
            _farm: farm,
            addr,
            ada,
            bob,
            model_id,
            orders: if count > 0 { count + 1 } else { 0 },
            _data: data,
        };
        shop.wait_for_cache().await;
        shop
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Waits until the operators' list is served from its cache (rebuilt
    /// from the database at start).
    async fn wait_for_cache(&self) {
        let started = Instant::now();
        loop {
            let response = self.seller.http.get(self.url("/readyz")).send().await;
            if let Ok(response) = response
                && let Ok(body) = response.json::<Value>().await
                && body["checks"]["order_cache"] == "ok"
            {
                eprintln!("the list cache was ready {:.1} s after start", started.elapsed().as_secs_f64());
                return;
            }
            assert!(started.elapsed() < Duration::from_secs(600), "the list cache never became ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A new order of the cube, priced; its id.
    pub(crate) async fn priced_order(&self) -> String {
        priced_order(&self.seller, &self.model_id).await
    }

    /// A new order approved for manufacturing by the CRM; its id.
    pub(crate) async fn approved_order(&self) -> String {
        let order_id = self.priced_order().await;
        self.approve(order_id).await
    }

    /// A new order of `body` (for example of several parts), priced and
    /// approved; its id.
    pub(crate) async fn approved_order_of(&self, body: &Value) -> String {
        let order_id = priced_order_of(&self.seller, body).await;
        self.approve(order_id).await
    }

    async fn approve(&self, order_id: String) -> String {
        let event = json!({ "event_id": format!("approve-{order_id}"), "order_id": order_id, "type": "approved",
                            "occurred_at_ms": 1 });
        let (status, answer) = self.crm.post("/v1/crm/events", &event).await;
        assert_eq!((status, answer["outcome"].as_str()), (200, Some("applied")), "{answer}");
        order_id
    }

    /// A counter of the farm's metrics, summed over its labels that contain
    /// `labels`.
    pub(crate) async fn metric(&self, name: &str, labels: &str) -> f64 {
        let text = self.seller.http.get(self.url("/metrics")).send().await.unwrap().text().await.unwrap();
        text.lines()
            .filter(|line| line.starts_with(name) && line.contains(labels))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

/// A new order of the model, priced; its id.
async fn priced_order(seller: &Api, model_id: &str) -> String {
    let body = json!({ "model_id": model_id, "material": "pla", "colour": "black", "quantity": 2 });
    priced_order_of(seller, &body).await
}

async fn priced_order_of(seller: &Api, body: &Value) -> String {
    let (status, order) = seller.post("/v1/orders", body).await;
    assert_eq!(status, 201, "{order}");
    let order_id = order["order_id"].as_str().unwrap().to_string();
    let started = Instant::now();
    loop {
        let (_, order) = seller.get(&format!("/v1/orders/{order_id}")).await;
        match order["status"].as_str() {
            Some("PRICED") => return order_id,
            Some("PRICING" | "CREATED") => {}
            other => panic!("order {order_id} is {other:?}: {order}"),
        }
        assert!(started.elapsed() < Duration::from_secs(60), "order {order_id} is never priced");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn start(dir: &str) -> FarmProcess {
    FarmProcess::spawn(&["serve", "--data-dir", dir, "--listen", "127.0.0.1:0"], &[])
}

/// `count` orders of the last two years: most shipped long ago, the newest
/// sixth still in flight, a sixth of those approved and waiting for an
/// operator (the mix of the seeds' 240,000-order table).
async fn insert_history(dir: &str, model_id: &str, quote: &Value, count: usize) {
    let url = format!("sqlite://{dir}/farm.db");
    let mut db = sqlx::SqliteConnection::connect(&url).await.expect("open the farm's database");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let span_ms: i64 = 2 * 365 * 24 * 3600 * 1000;
    let document = quote.to_string();
    let total = quote["total"].as_f64().unwrap_or(10.0);
    let currency = quote["currency"].as_str().unwrap_or("EUR").to_string();
    const BATCH: usize = 500;
    let mut tx = sqlx::Connection::begin(&mut db).await.unwrap();
    for start in (0..count).step_by(BATCH) {
        let rows: Vec<usize> = (start..(start + BATCH).min(count)).collect();
        let mut sql = String::from(
            "INSERT INTO orders (order_id, source, seller, model_id, material, colour, quantity, quote, total, \
             currency, status, assignee, created_at_ms, updated_at_ms, version) VALUES ",
        );
        for (n, _) in rows.iter().enumerate() {
            let base = n * 14;
            let params: Vec<String> = (1..=14).map(|k| format!("${}", base + k)).collect();
            sql.push_str(&format!(
                "{}({}, {}, {})",
                if n > 0 { ", " } else { "" },
                params[0],
                "'api'",
                params[1..].join(", ")
            ));
        }
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for &i in &rows {
            // Oldest first; the newest sixth is recent.
            let created = now - span_ms + (span_ms as f64 * (i as f64 + 0.5) / count as f64) as i64;
            let recent = i >= count - count / 6;
            let (status, assignee, version) = match (recent, i % 6) {
                (true, 0) => ("MANUFACTURING_APPROVED", None, 4),
                (true, 1) => ("PRICED", None, 3),
                (true, 2) => ("MANUFACTURING_STARTED", Some("Carol"), 5),
                _ => ("SHIPPED", Some("Carol"), 7),
            };
            let material = ["pla", "petg", "abs"][i % 3];
            query = query
                .bind(uuid::Uuid::now_v7().to_string())
                .bind("history")
                .bind(model_id)
                .bind(material)
                .bind("black")
                .bind(1 + (i % 4) as i64)
                .bind(&document)
                .bind(total)
                .bind(&currency)
                .bind(status)
                .bind(assignee)
                .bind(created)
                .bind(created)
                .bind(version);
        }
        query.execute(&mut *tx).await.expect("insert seeded orders");
    }
    // What the list shows of each quote is kept beside it, as the API
    // stores it when an order is priced (the same extraction as migration
    // 0010 for orders priced before it).
    sqlx::query(
        "UPDATE orders SET machine = json_extract(quote, '$.machine.name'), \
                size_x_mm = json_extract(quote, '$.analysis.bounding_box.size[0]'), \
                size_y_mm = json_extract(quote, '$.analysis.bounding_box.size[1]'), \
                size_z_mm = json_extract(quote, '$.analysis.bounding_box.size[2]'), \
                print_time_s = json_extract(quote, '$.print_time_s') \
         WHERE quote IS NOT NULL AND machine IS NULL",
    )
    .execute(&mut *tx)
    .await
    .expect("store the seeded orders' list facts");
    tx.commit().await.unwrap();
}
