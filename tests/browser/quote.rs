//! The instant-quote page: a seller uploads a corpus model and sees the
//! total and the 3D preview; a new quantity gives a new price; placing the
//! order twice with the same choices makes one order. The reference data is
//! kept in Local Storage, and a reload only revalidates it (a 304).

use fantoccini::Locator;

use crate::driver::{Driver, eval, screenshot, shown, sign_in, wait_for};
use crate::helpers::workspace_root;
use crate::seed::Shop;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seller_uploads_a_model_sees_its_price_and_preview_and_orders_it_once() {
    let Some(driver) = Driver::start() else { return };
    let shop = Shop::open(false).await;
    let browser = driver.browser("seller", "en-US").await;
    browser.goto(&shop.url("/quote/")).await.unwrap();
    // An operator's key is refused here.
    sign_in(&browser, &shop.ada).await;
    wait_for(
        &browser,
        "the wrong-kind message",
        "document.querySelector('form [data-role=error]').textContent.length > 0",
    )
    .await;
    browser.find(Locator::Css("input[name=key]")).await.unwrap().clear().await.unwrap();
    sign_in(&browser, &shop.seller.token).await;
    wait_for(&browser, "the reference data", "document.body.dataset.loaded === 'reference'").await;
    assert_eq!(eval(&browser, &shown("section.sign-in")).await, false, "the sign-in form is still drawn");

    // The reference data came over the network once and is kept.
    assert_eq!(eval(&browser, "document.documentElement.dataset.reference").await, "network");
    let stored = eval(&browser, "JSON.parse(localStorage.getItem('farm.reference'))").await;
    assert!(stored["etag"].as_str().is_some_and(|e| e.starts_with('"')), "{stored}");
    assert!(stored["data"]["materials"].as_array().is_some_and(|m| !m.is_empty()), "{stored}");

    // A corpus model: a 20 mm calibration cube with X, Y and Z on its sides.
    let model = workspace_root().join("tests/data/corpus/files/trimesh_20mm_xyz_cube.stl");
    let input = browser.find(Locator::Css("input[type=file]")).await.unwrap();
    input.send_keys(model.to_str().unwrap()).await.unwrap();
    let total =
        wait_for(&browser, "the total", "document.querySelector('[data-testid=\"quote-total\"]').textContent").await;
    let first_total = total.as_str().unwrap().to_string();
    assert!(first_total.chars().any(|c| c.is_ascii_digit()), "{first_total}");
    wait_for(&browser, "the 3D preview", "document.querySelector('canvas[data-ready=true]')").await;
    // The preview drew every triangle the file holds (a binary STL's count).
    let bytes = std::fs::read(&model).unwrap();
    let triangles = u32::from_le_bytes(bytes[80..84].try_into().unwrap());
    assert_eq!(eval(&browser, "document.querySelector('canvas').dataset.triangles").await, triangles.to_string());
    assert_eq!(eval(&browser, "document.querySelector('[data-role=upload-box] progress').value").await, 100);
    assert!(eval(&browser, "document.querySelectorAll('[data-role=lines] tr').length").await.as_u64() > Some(1));
    screenshot(&browser, "quote").await;

    // Ten parts cost more than two... or at least something else.
    let quantity = browser.find(Locator::Css("[data-role=quantity]")).await.unwrap();
    quantity.clear().await.unwrap();
    quantity.send_keys("10\t").await.unwrap();
    let repriced = format!(
        "(t => t && t !== {first_total:?} && t)(document.querySelector('[data-testid=\"quote-total\"]').textContent)"
    );
    wait_for(&browser, "a new price for ten", &repriced).await;

    // Place it; a second click with the same choices is the same order.
    browser.find(Locator::Css("[data-role=place]")).await.unwrap().click().await.unwrap();
    let placed =
        wait_for(&browser, "the placed order", "document.querySelector('[data-testid=placed]').dataset.orderId").await;
    wait_for(&browser, "the button again", "!document.querySelector('[data-role=place]').disabled").await;
    eval(&browser, "delete document.querySelector('[data-testid=placed]').dataset.orderId").await;
    browser.find(Locator::Css("[data-role=place]")).await.unwrap().click().await.unwrap();
    let again =
        format!("(id => id === {placed} && id)(document.querySelector('[data-testid=placed]').dataset.orderId)");
    wait_for(&browser, "the same order", &again).await;
    let (_, orders) = shop.seller.get("/v1/orders").await;
    let mine = orders["orders"].as_array().unwrap();
    assert_eq!(mine.len(), 1, "one order, not two: {orders}");
    assert_eq!(mine[0]["quantity"], 10);

    // A reload: the reference data is revalidated (304), not downloaded.
    let full_before = shop.metric("farm_reference_requests_total", "result=\"full\"").await;
    browser.refresh().await.unwrap();
    wait_for(&browser, "the reloaded page", "document.body.dataset.loaded === 'reference'").await;
    assert_eq!(eval(&browser, "document.documentElement.dataset.reference").await, "revalidated");
    assert_eq!(shop.metric("farm_reference_requests_total", "result=\"full\"").await, full_before);
    assert!(shop.metric("farm_reference_requests_total", "result=\"not_modified\"").await >= 1.0);

    // Signing out ends the session: the next call needs a key again.
    browser.find(Locator::Css("[data-role=sign-out]")).await.unwrap().click().await.unwrap();
    wait_for(&browser, "the sign-in form", &shown("section.sign-in")).await;
    let _ = browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_3mf_model_is_priced_without_a_preview() {
    let Some(driver) = Driver::start() else { return };
    let shop = Shop::open(false).await;
    let browser = driver.browser("seller-3mf", "en-US").await;
    browser.goto(&shop.url("/quote/")).await.unwrap();
    sign_in(&browser, &shop.seller.token).await;
    wait_for(&browser, "the reference data", "document.body.dataset.loaded === 'reference'").await;
    let model = workspace_root().join("tests/data/cube_20mm.3mf");
    let input = browser.find(Locator::Css("input[type=file]")).await.unwrap();
    input.send_keys(model.to_str().unwrap()).await.unwrap();
    // The page cannot draw a 3MF; the server reads it and prices it.
    let total =
        wait_for(&browser, "the total", "document.querySelector('[data-testid=\"quote-total\"]').textContent").await;
    assert!(total.as_str().is_some_and(|t| t.chars().any(|c| c.is_ascii_digit())), "{total}");
    let note = eval(&browser, "document.querySelector('[data-role=preview-slot] p')?.textContent ?? document.querySelector('[data-role=preview-slot]').innerHTML").await;
    assert!(note.as_str().is_some_and(|n| n.contains("STL")), "{note}");
    assert_eq!(
        eval(&browser, "document.querySelector('[data-role=error]:not(form [data-role=error])')?.textContent ?? ''")
            .await,
        ""
    );
    let _ = browser.close().await;
}

/// Two models gathered into one order: the first is added to the order's
/// list, the second is priced on screen, and placing sends both as one order
/// of two parts, whose total the farm prices with one setup fee.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seller_gathers_two_models_into_one_order_of_two_parts() {
    let Some(driver) = Driver::start() else { return };
    let shop = Shop::open(false).await;
    let browser = driver.browser("seller-parts", "en-US").await;
    browser.goto(&shop.url("/quote/")).await.unwrap();
    sign_in(&browser, &shop.seller.token).await;
    wait_for(&browser, "the reference data", "document.body.dataset.loaded === 'reference'").await;
    let total_shown = "document.querySelector('[data-testid=\"quote-total\"]').textContent";

    let first = workspace_root().join("tests/data/corpus/files/trimesh_20mm_xyz_cube.stl");
    browser.find(Locator::Css("input[type=file]")).await.unwrap().send_keys(first.to_str().unwrap()).await.unwrap();
    wait_for(&browser, "the first part's total", total_shown).await;
    assert_eq!(eval(&browser, &shown("[data-testid=basket]")).await, false, "the list shows before a part is added");
    browser.find(Locator::Css("[data-role=add]")).await.unwrap().click().await.unwrap();
    wait_for(&browser, "the list of parts", &shown("[data-testid=basket]")).await;
    assert_eq!(eval(&browser, "document.querySelectorAll('[data-testid=basket] tr[data-part]').length").await, 1);
    assert_eq!(eval(&browser, &shown("[data-role=result]")).await, false, "the added part is still on screen");

    let second = workspace_root().join("tests/data/cube_20mm.obj");
    let input = browser.find(Locator::Css("input[type=file]")).await.unwrap();
    input.send_keys(second.to_str().unwrap()).await.unwrap();
    wait_for(&browser, "the second part's total", total_shown).await;
    let label = eval(&browser, "document.querySelector('[data-role=place]').textContent").await;
    assert!(label.as_str().is_some_and(|l| l.contains('2')), "the button does not say two parts: {label}");

    browser.find(Locator::Css("[data-role=place]")).await.unwrap().click().await.unwrap();
    let placed = wait_for(
        &browser,
        "the order priced",
        "(p => p.dataset.status === 'PRICED' && p.dataset.orderId)(document.querySelector('[data-testid=placed]'))",
    )
    .await;
    let order_id = placed.as_str().unwrap();
    screenshot(&browser, "quote-two-parts").await;
    let (status, order) = shop.seller.get(&format!("/v1/orders/{order_id}")).await;
    assert_eq!(status, 200, "{order}");
    assert_eq!(order["part_count"], 2, "{order}");
    let parts = order["parts"].as_array().unwrap();
    assert_ne!(parts[0]["model_id"], parts[1]["model_id"], "{order}");
    let lines = order["quote"]["line_items"].as_array().unwrap();
    assert_eq!(lines.iter().filter(|l| l["label"] == "setup").count(), 1, "one setup fee: {order}");
    // The page shows the farm's total of the whole order, not a sum of its own.
    let text = eval(&browser, "document.querySelector('[data-testid=placed]').textContent").await;
    let total = order["total"].as_f64().unwrap();
    let digits: String = format!("{total:.2}").chars().filter(char::is_ascii_digit).collect();
    let shown_digits: String = text.as_str().unwrap().chars().filter(char::is_ascii_digit).collect();
    assert!(shown_digits.contains(&digits), "{text} does not show {total}");
    let (_, orders) = shop.seller.get("/v1/orders").await;
    assert_eq!(orders["orders"].as_array().unwrap().len(), 1, "one order, not one per part: {orders}");
    let _ = browser.close().await;
}
