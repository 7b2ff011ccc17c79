//! The operators' console: two operators see an approved order; one takes
//! it, and it leaves the other's screen without a reload. The other sees
//! who took an order it was looking at; the taker finishes it from "My
//! orders". The first page's time after sign-in and the take's time to the
//! other console are recorded (BENCHMARKS.md), not asserted.

use std::time::Instant;

use fantoccini::Locator;
use serde_json::json;

use crate::driver::{Driver, eval, record_timing, screenshot, shown, sign_in, wait_for};
use crate::helpers::Api;
use crate::seed::Shop;

fn row(order_id: &str) -> String {
    format!("document.querySelector('[data-role=approved] tr[data-order-id=\"{order_id}\"]')")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_take_leaves_every_other_console_without_a_reload() {
    let Some(driver) = Driver::start() else { return };
    let shop = Shop::open(true).await;
    let first = shop.approved_order().await;
    let second = shop.approved_order().await;

    let ada = driver.browser("ada", "en-GB").await;
    let bob = driver.browser("bob", "ru-RU").await;
    for (browser, key) in [(&ada, &shop.ada), (&bob, &shop.bob)] {
        browser.goto(&shop.url("/console/")).await.unwrap();
        // Time from the click on "Sign in" to the first page on screen.
        sign_in(browser, key).await;
        let clicked = Instant::now();
        wait_for(browser, "the first page", &row(&first)).await;
        let first_page_ms = clicked.elapsed().as_secs_f64() * 1000.0;
        wait_for(browser, "the live stream", "document.body.dataset.live === 'on'").await;
        assert_eq!(eval(browser, &shown("section.sign-in")).await, false, "the sign-in form is still drawn");
        let rows = eval(browser, "document.querySelectorAll('[data-role=approved] tbody tr').length").await;
        record_timing(
            &format!("console_first_page_ms_{}_orders", shop.orders),
            json!({ "ms": first_page_ms, "rows": rows, "served_from": eval(browser, "document.body.dataset.approvedFrom").await }),
        );
    }
    // The browser's language picks the page's: Bob's chromium asks for Russian.
    assert_eq!(eval(&bob, "document.documentElement.lang").await, "ru");
    assert_eq!(eval(&ada, "document.documentElement.lang").await, "en");
    // Rows show what an operator plans with.
    let cells = eval(&ada, &format!("[...{}.cells].map(c => c.textContent)", row(&first))).await;
    let cells: Vec<String> = serde_json::from_value(cells).unwrap();
    assert!(cells[1].starts_with("PLA"), "material: {cells:?}");
    assert_eq!(cells[2], "2", "quantity: {cells:?}");
    assert!(cells[3].contains('×'), "size: {cells:?}");
    assert!(cells[4].contains("min") || cells[4].contains('h'), "print time: {cells:?}");
    assert!(cells[5].chars().any(|c| c.is_ascii_digit()), "price: {cells:?}");

    // Ada takes the first order; it leaves Bob's list without a reload.
    let take = format!("[data-role=approved] tr[data-order-id=\"{first}\"] [data-action=\"take\"]");
    let clicked = Instant::now();
    ada.find(Locator::Css(&take)).await.unwrap().click().await.unwrap();
    wait_for(&bob, "the taken order to leave Bob's list", &format!("!{}", row(&first))).await;
    let propagation_ms = clicked.elapsed().as_secs_f64() * 1000.0;
    record_timing("take_propagation_ms", json!(propagation_ms));
    let mine = format!("document.querySelector('[data-role=mine] tr[data-order-id=\"{first}\"]')");
    wait_for(&ada, "the order in Ada's own list", &mine).await;

    // Bob looks at the second order (its quote and 3D preview) when Ada
    // takes it from elsewhere: Bob is told who.
    bob.find(Locator::Css(&format!("[data-role=approved] tr[data-order-id=\"{second}\"] td")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(
        &bob,
        "the order's 3D preview",
        "document.querySelector('[data-role=preview-slot] canvas[data-ready=true]')",
    )
    .await;
    wait_for(&bob, "the order's quote lines", "document.querySelectorAll('[data-role=lines] tr').length > 1").await;
    let renderer = eval(&bob, "document.querySelector('[data-role=preview-slot] canvas').dataset.renderer").await;
    eprintln!("the preview drew with {renderer}");
    let download = eval(&bob, "document.querySelector('[data-role=download]').getAttribute('href')").await;
    assert_eq!(download, format!("/v1/models/{}", shop.model_id));
    screenshot(&bob, "console-detail").await;
    let take_second = format!("/v1/orders/{second}/take");
    let (status, taken) = shop.operator.post(&take_second, &json!({})).await;
    assert_eq!(status, 200, "{taken}");
    wait_for(&bob, "the second order to leave the list", &format!("!{}", row(&second))).await;
    wait_for(&bob, "who took it", "document.querySelector('[data-testid=notice]').textContent.includes('Ada')").await;
    // A late take gets the loser's answer: who has it.
    let (status, lost) = Api::new(&shop.addr, &shop.bob).post(&take_second, &json!({})).await;
    assert_eq!((status, lost["error"]["details"]["assignee"].as_str()), (409, Some("Ada")), "{lost}");

    // Ada completes and ships from "My orders".
    for action in ["complete", "ship"] {
        let button = format!("[data-role=mine] tr[data-order-id=\"{first}\"] [data-action=\"{action}\"]");
        wait_for(&ada, &format!("the {action} button"), &format!("document.querySelector('{button}')")).await;
        ada.find(Locator::Css(&button)).await.unwrap().click().await.unwrap();
    }
    wait_for(&ada, "the shipped order to leave Ada's list", &format!("!{mine}")).await;
    let (_, order) = shop.operator.get(&format!("/v1/orders/{first}")).await;
    assert_eq!(order["status"], "SHIPPED", "{order}");
    screenshot(&ada, "console").await;

    // The language switch.
    ada.find(Locator::Css("button[data-lang=ru]")).await.unwrap().click().await.unwrap();
    wait_for(&ada, "the page in Russian", "document.querySelector('h1').textContent === 'Пульт оператора'").await;
    assert_eq!(eval(&ada, "localStorage.getItem('farm.lang')").await, "\"ru\"");
    let stored: Vec<String> = serde_json::from_value(eval(&ada, "Object.keys(localStorage)").await).unwrap();
    assert!(stored.iter().all(|k| k.starts_with("farm.")), "{stored:?}");
    assert!(!stored.iter().any(|k| eval_contains_key(k)), "a key was stored: {stored:?}");
    let _ = ada.close().await;
    let _ = bob.close().await;
}

/// An order of several parts: its row says how many, its detail shows the
/// order's lines and total, and a picker shows each part's facts and file.
#[tokio::test]
async fn an_order_of_parts_shows_its_parts_and_each_parts_file() {
    let Some(driver) = Driver::start() else { return };
    let shop = Shop::open(false).await;
    let bytes = mesh::write_binary_stl(&mesh::cuboid([30.0, 20.0, 10.0]));
    let (status, second) = shop.seller.upload(bytes).await;
    assert_eq!(status, 201, "{second}");
    let second_model = second["model_id"].as_str().unwrap().to_string();
    let body = json!({"items": [
        {"model_id": shop.model_id, "material": "pla", "quantity": 2},
        {"model_id": second_model, "material": "petg", "colour": "white"},
    ]});
    let order = shop.approved_order_of(&body).await;

    let ada = driver.browser("ada-parts", "en-GB").await;
    ada.goto(&shop.url("/console/")).await.unwrap();
    sign_in(&ada, &shop.ada).await;
    wait_for(&ada, "the order's row", &row(&order)).await;
    let material = eval(&ada, &format!("{}.cells[1].textContent", row(&order))).await;
    assert!(material.as_str().unwrap().contains("2 parts"), "{material}");

    ada.find(Locator::Css(&format!("[data-role=approved] tr[data-order-id=\"{order}\"] td")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&ada, "the part picker", "document.querySelectorAll('[data-testid=parts] button').length === 2").await;
    let labels =
        eval(&ada, "[...document.querySelectorAll('[data-role=lines] tr td:first-child')].map(c => c.textContent)")
            .await;
    let labels: Vec<String> = serde_json::from_value(labels).unwrap();
    assert_eq!(&labels[..3], ["part 1", "part 2", "setup"], "the order's lines: {labels:?}");
    let download = "document.querySelector('[data-role=download]').getAttribute('href')";
    assert_eq!(eval(&ada, download).await, format!("/v1/models/{}", shop.model_id));
    ada.find(Locator::Css("[data-testid=parts] button[data-part=\"2\"]")).await.unwrap().click().await.unwrap();
    wait_for(&ada, "the second part's file", &format!("{download} === '/v1/models/{second_model}'")).await;
    let facts = eval(&ada, "document.querySelector('[data-role=facts]').textContent").await;
    assert!(facts.as_str().unwrap().contains("PETG"), "the second part's facts: {facts}");
    let _ = ada.close().await;
}

/// Local Storage never holds a key (only `farm.lang` and `farm.reference`).
fn eval_contains_key(name: &str) -> bool {
    name.contains("key") || name.contains("token") || name.contains("session")
}
