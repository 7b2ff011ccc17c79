// The instant-quote page: a seller (or the shop's customer) drops an STL,
// watches it upload and get priced, sees the total, the lines behind it,
// the warnings in plain words and the 3D preview, changes material, colour
// or quantity for a new price, and places the order. Placing is idempotent:
// a retry or a double click with the same choices sends the same
// `Idempotency-Key`, and the farm answers with the same order.

import {
  api, csrfHeaders, requireSession, loadReference, mountLanguageSwitch, onLanguageChange, t, h,
  money, plainWarnings, lineRows, shortId,
} from "farm/common.js";
import { parseStl, StlError } from "farm/stl.js";
import { showModel } from "farm/viewer.js";

const $ = (role) => document.querySelector(`[data-role="${role}"]`);
const POLL_MS = 250;

const state = {
  reference: null,
  modelId: null,
  quote: null,
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
  state.quote = job.quote;
  showQuote(job.quote);
}

function showQuote(quote) {
  $("result").hidden = false;
  document.querySelector("[data-testid=quote-total]").textContent = money(quote.total, quote.currency);
  $("lines").replaceChildren(...lineRows(quote));
  const warnings = plainWarnings(quote);
  $("warnings").replaceChildren(...(warnings.length ? warnings.map((w) => h("li", {}, w)) : [h("li", { class: "muted" }, t("detail.no_warnings"))]));
  $("place").disabled = false;
  $("placed").hidden = true;
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

async function place() {
  const body = { model_id: state.modelId, ...choices() };
  const signature = JSON.stringify(body);
  if (state.order.signature !== signature) {
    // A new order: a new key. The same choices again (a retry, a double
    // click) keep the key, so the farm returns the same order.
    state.order = { signature, key: crypto.randomUUID() };
  }
  const button = $("place");
  button.disabled = true;
  try {
    const order = await api("POST", "/v1/orders", { json: body, headers: { "idempotency-key": state.order.key } });
    const placed = $("placed");
    placed.textContent = t("quote.placed", { order: shortId(order.order_id), status: t(`status.${order.status}`) });
    placed.dataset.orderId = order.order_id;
    placed.hidden = false;
  } catch (e) {
    showError(e.message);
  } finally {
    button.disabled = false;
  }
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
}

main().catch((e) => showError(e.message));
