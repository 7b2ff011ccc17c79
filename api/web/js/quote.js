// The instant-quote page: a seller (or the shop's customer) drops an STL,
// watches it upload and get priced, sees the total, the lines behind it,
// the warnings in plain words and the 3D preview, changes material, colour
// or quantity for a new price, and places the order. Priced parts can be
// gathered into one order of several parts (the setup fee and the minimum
// order are then charged once). Placing is idempotent: a retry or a double
// click with the same parts sends the same `Idempotency-Key`, and the farm
// answers with the same order.

import {
  api, csrfHeaders, requireSession, loadReference, mountLanguageSwitch, onLanguageChange, t, h,
  money, plainWarnings, lineRows, shortId,
} from "farm/common.js";
import { parseStl, StlError } from "farm/stl.js";
import { showModel } from "farm/viewer.js";

const $ = (role) => document.querySelector(`[data-role="${role}"]`);
const POLL_MS = 250;
// How long the page waits for a placed order of several parts to be priced
// before it leaves the order's status as it is.
const ORDER_PATIENCE_MS = 120_000;

const state = {
  reference: null,
  modelId: null,
  fileName: null,
  quote: null,
  // The parts already priced and added to the order, in order.
  basket: [],
  // Each pricing run has a number; an older run's answers are ignored.
  run: 0,
  preview: null,
  order: { signature: null, key: null },
};

function showError(message) {
  const slot = document.querySelector("main [data-role=error]");
  slot.textContent = message || "";
  slot.hidden = !message;
}

function choices() {
  return {
    material: $("material").value,
    colour: $("colour").value || null,
    quantity: Math.max(1, Math.floor(Number($("quantity").value) || 1)),
  };
}

function fillMaterials() {
  const current = $("material").value;
  $("material").replaceChildren(...state.reference.materials.map((m) =>
    h("option", { value: m.id, selected: m.id === current }, `${m.id.toUpperCase()} (${m.technology.toUpperCase()})`)));
  fillColours();
}

function fillColours() {
  const material = state.reference.materials.find((m) => m.id === $("material").value) || state.reference.materials[0];
  const current = $("colour").value;
  $("colour").replaceChildren(...(material ? material.colours : []).map((c) => h("option", { value: c, selected: c === current }, c)));
  $("colour").disabled = !material || material.colours.length === 0;
}

// ---- Upload ------------------------------------------------------------------

function upload(file) {
  const box = $("upload-box");
  const bar = box.querySelector("progress");
  box.hidden = false;
  bar.value = 0;
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", "/v1/models");
    request.withCredentials = true;
    for (const [name, value] of Object.entries(csrfHeaders())) request.setRequestHeader(name, value);
    // The server tells STL, 3MF and OBJ apart by their bytes.
    request.setRequestHeader("content-type", "application/octet-stream");
    request.upload.addEventListener("progress", (e) => {
      if (!e.lengthComputable) return;
      const percent = Math.round((e.loaded / e.total) * 100);
      bar.value = percent;
      $("upload-text").textContent = t("quote.uploading", { percent });
    });
    request.addEventListener("load", () => {
      let body = null;
      try { body = JSON.parse(request.responseText); } catch { body = null; }
      if (request.status >= 200 && request.status < 300 && body) {
        bar.value = 100;
        $("upload-text").textContent = t("quote.uploaded");
        resolve(body.model_id);
      } else {
        reject(new Error((body && body.error && body.error.message) || `HTTP ${request.status}`));
      }
    });
    request.addEventListener("error", () => reject(new Error(t("error.network"))));
    request.send(file);
  });
}

// ---- Pricing -----------------------------------------------------------------

function stageText(job) {
  if (job.status === "queued") return t("quote.stage.queued");
  const stage = job.stage ? t(`quote.stage.${job.stage}`) : t("stage.unknown");
  return t("quote.stage.running", { stage, percent: job.percent ?? 0 });
}

async function price() {
  if (!state.modelId) return;
  const run = ++state.run;
  const box = $("job-box");
  const bar = box.querySelector("progress");
  box.hidden = false;
  bar.removeAttribute("value");
  $("job-text").textContent = t("quote.stage.queued");
  document.querySelector("[data-testid=quote-total]").textContent = "";
  $("place").disabled = true;
  // Until the new price is in, the part on screen is not part of an order.
  state.quote = null;
  showBasket();
  showError("");
  const accepted = await api("POST", "/v1/pricing-jobs", { json: { model_id: state.modelId, ...choices() } });
  let job = { status: accepted.status };
  while (run === state.run) {
    job = await api("GET", `/v1/pricing-jobs/${accepted.job_id}`);
    if (run !== state.run) return;
    if (job.status === "succeeded" || job.status === "failed" || job.status === "cancelled") break;
    if (typeof job.percent === "number") bar.value = job.percent;
    $("job-text").textContent = stageText(job);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  if (run !== state.run) return;
  box.hidden = true;
  if (job.status !== "succeeded") {
    showError(t("quote.failed", { message: job.error ? job.error.message : job.status }));
    return;
  }
  state.quote = { ...job.quote, choices: choices() };
  showQuote(state.quote);
}

function showQuote(quote) {
  $("result").hidden = false;
  document.querySelector("[data-testid=quote-total]").textContent = money(quote.total, quote.currency);
  $("lines").replaceChildren(...lineRows(quote));
  const warnings = plainWarnings(quote);
  $("warnings").replaceChildren(...(warnings.length ? warnings.map((w) => h("li", {}, w)) : [h("li", { class: "muted" }, t("detail.no_warnings"))]));
  $("place").disabled = false;
  $("placed").hidden = true;
  showBasket();
}

// ---- The order's parts -------------------------------------------------------

/// Every part the order would hold: those added, then the one on screen
/// when it is priced.
function orderParts() {
  const parts = [...state.basket];
  if (state.quote && state.modelId) parts.push(currentPart());
  return parts;
}

function currentPart() {
  const { material, colour, quantity } = state.quote.choices;
  return { modelId: state.modelId, name: state.fileName, material, colour, quantity, total: state.quote.total, currency: state.quote.currency };
}

function addToOrder() {
  if (!state.quote || !state.modelId) return;
  state.basket.push(currentPart());
  // The next model starts afresh; the added part stays in the list.
  state.modelId = null;
  state.quote = null;
  state.run++;
  $("result").hidden = true;
  document.querySelector("[data-testid=quote-total]").textContent = "";
  $("file").value = "";
  showBasket();
}

function showBasket() {
  const basket = $("basket");
  basket.hidden = state.basket.length === 0;
  const rows = state.basket.map((part, index) => h("tr", { dataset: { part: String(index + 1) } },
    h("td", {}, t("detail.part", { n: index + 1 })),
    h("td", { class: "basis" }, `${part.name || shortId(part.modelId)} · ${part.quantity} × ${part.material.toUpperCase()}${part.colour ? `, ${part.colour}` : ""}`),
    h("td", { class: "num" }, money(part.total, part.currency)),
    h("td", {}, h("button", { type: "button", onclick: () => { state.basket.splice(index, 1); showBasket(); } }, t("quote.remove")))));
  $("basket-rows").replaceChildren(...rows);
  const count = orderParts().length;
  const label = count > 1 ? t("quote.place_parts", { count }) : t("quote.place");
  for (const role of ["place", "place-basket"]) $(role).textContent = label;
  $("place-basket").disabled = count === 0;
  // The part on screen can join the list while the order has room for one
  // more after it.
  const most = state.reference.max_order_parts || Infinity;
  $("add").disabled = !state.quote || state.basket.length + 2 > most;
  $("add").title = $("add").disabled && state.quote ? t("quote.order_full", { most }) : "";
}

// ---- Preview -----------------------------------------------------------------

function preview(corners) {
  state.preview?.dispose();
  const canvas = h("canvas", { "data-testid": "preview", width: 480, height: 360 });
  $("preview-slot").replaceChildren(canvas);
  $("result").hidden = false;
  state.preview = showModel(canvas, corners, state.reference.overhang_angle_deg);
  canvas.dataset.ready = "true";
}

async function choose(file) {
  showError("");
  state.modelId = null;
  state.fileName = file.name;
  state.quote = null;
  state.run++;
  const limit = state.reference.max_model_bytes;
  if (limit && file.size > limit) {
    showError(t("quote.too_big", { limit: Math.floor(limit / 1048576) }));
    return;
  }
  try {
    preview(parseStl(await file.arrayBuffer()));
  } catch (e) {
    if (!(e instanceof StlError)) throw e;
    // Not an STL (a 3MF or an OBJ, or not a model at all): the server reads
    // its content and answers for it; only the preview is left out.
    const why = e.message.startsWith("not") ? "quote.no_preview" : "quote.preview_skipped";
    $("preview-slot").replaceChildren(h("p", { class: "muted" }, t(why)));
  }
  try {
    state.modelId = await upload(file);
    await price();
  } catch (e) {
    showError(e.message);
  }
}

// ---- Ordering ----------------------------------------------------------------

function orderBody(parts) {
  const item = (p) => ({ model_id: p.modelId, material: p.material, colour: p.colour, quantity: p.quantity });
  // One part keeps the single-part form; several go as `items`.
  return parts.length === 1 ? item(parts[0]) : { items: parts.map(item) };
}

async function place() {
  const parts = orderParts();
  if (parts.length === 0) return;
  const body = orderBody(parts);
  const signature = JSON.stringify(body);
  if (state.order.signature !== signature) {
    // A new order: a new key. The same parts again (a retry, a double
    // click) keep the key, so the farm returns the same order.
    state.order = { signature, key: crypto.randomUUID() };
  }
  const buttons = [$("place"), $("place-basket")];
  for (const button of buttons) button.disabled = true;
  try {
    let order = await api("POST", "/v1/orders", { json: body, headers: { "idempotency-key": state.order.key } });
    showPlaced(order);
    // An order of several parts is priced as a whole once each part is:
    // its total (one setup fee, one minimum) is the farm's, not a sum here.
    const deadline = Date.now() + ORDER_PATIENCE_MS;
    while (order.status === "PRICING" && Date.now() < deadline && state.order.signature === signature) {
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      order = await api("GET", `/v1/orders/${order.order_id}`);
      showPlaced(order);
    }
  } catch (e) {
    showError(e.message);
  } finally {
    for (const button of buttons) button.disabled = false;
    showBasket();
  }
}

function showPlaced(order) {
  const placed = $("placed");
  const status = t(`status.${order.status}`);
  const text = order.total === null || order.total === undefined
    ? t("quote.placed", { order: shortId(order.order_id), status })
    : t("quote.placed_total", { order: shortId(order.order_id), status, total: money(order.total, order.currency) });
  placed.textContent = text;
  placed.dataset.orderId = order.order_id;
  placed.dataset.status = order.status;
  placed.hidden = false;
  // Shown where the button was pressed: under the part, or under the list.
  (state.quote ? $("place").parentElement : $("place-basket")).after(placed);
}

// ---- Start -------------------------------------------------------------------

async function main() {
  mountLanguageSwitch();
  await requireSession("seller", { form: $("sign-in"), app: $("app"), who: $("who"), signOutButton: $("sign-out") });
  document.body.dataset.signedIn = "true";
  state.reference = await loadReference();
  fillMaterials();
  document.body.dataset.loaded = "reference";
  onLanguageChange(() => {
    fillMaterials();
    if (state.quote) showQuote(state.quote);
  });
  $("material").addEventListener("change", () => { fillColours(); price().catch((e) => showError(e.message)); });
  for (const role of ["colour", "quantity"]) $(role).addEventListener("change", () => price().catch((e) => showError(e.message)));
  $("file").addEventListener("change", (e) => { const file = e.target.files[0]; if (file) choose(file).catch((err) => showError(err.message)); });
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.dataset.over = "true"; });
  drop.addEventListener("dragleave", () => delete drop.dataset.over);
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    delete drop.dataset.over;
    const file = e.dataTransfer.files[0];
    if (file) choose(file).catch((err) => showError(err.message));
  });
  $("place").addEventListener("click", () => place());
  $("place-basket").addEventListener("click", () => place());
  $("add").addEventListener("click", () => addToOrder());
}

main().catch((e) => showError(e.message));
