// The operators' console: the approved orders, newest first, filtered by
// material and machine; live changes from every other console; take an
// order, then complete, ship or release it; an order's quote, facts,
// warnings and 3D preview.

import {
  api, requireSession, loadReference, mountLanguageSwitch, onLanguageChange, t, h,
  money, duration, size, age, shortId, plainWarnings, lineRows, number,
} from "farm/common.js";
import { parseStl, StlError } from "farm/stl.js";
import { showModel } from "farm/viewer.js";

const APPROVED = "MANUFACTURING_APPROVED";
const MINE = ["MANUFACTURING_STARTED", "MANUFACTURING_COMPLETED"];
const PAGE = 50;

const $ = (role) => document.querySelector(`[data-role="${role}"]`);

const state = {
  session: null,
  reference: null,
  approved: [],
  cursor: null,
  mine: [],
  // The newest version seen of each order: an older change arriving late
  // (from another replica, or a page that raced the stream) is dropped.
  versions: new Map(),
  filters: { material: "", machine: "" },
  detail: null,
  preview: null,
};

const newestFirst = (a, b) => b.created_at_ms - a.created_at_ms || (a.order_id < b.order_id ? 1 : a.order_id > b.order_id ? -1 : 0);

function seen(order) {
  const held = state.versions.get(order.order_id);
  if (held !== undefined && held >= order.version) return false;
  state.versions.set(order.order_id, order.version);
  return true;
}

function matchesFilters(order) {
  return (!state.filters.material || order.material === state.filters.material) &&
    (!state.filters.machine || order.machine === state.filters.machine);
}

// ---- Rendering ---------------------------------------------------------------

function materialCell(order) {
  // An order of several parts shows its first part, and how many it has.
  const parts = order.part_count > 1 ? h("span", { class: "muted" }, ` · ${t("list.parts", { count: order.part_count })}`) : null;
  return [order.material.toUpperCase(), order.colour ? h("span", { class: "muted" }, ` · ${order.colour}`) : null, parts];
}

function approvedRow(order) {
  return h("tr", { dataset: { orderId: order.order_id }, onclick: (e) => { if (!e.target.closest("button")) openDetail(order.order_id); } },
    h("td", { class: "mono", title: order.order_id }, shortId(order.order_id)),
    h("td", {}, materialCell(order)),
    h("td", { class: "num" }, order.quantity),
    h("td", {}, size(order.size_mm)),
    h("td", {}, duration(order.print_time_s)),
    h("td", { class: "num" }, money(order.total, order.currency)),
    h("td", { dataset: { age: order.created_at_ms } }, age(order.created_at_ms)),
    h("td", {}, h("button", { type: "button", dataset: { action: "take" }, onclick: () => take(order) }, t("action.take"))),
  );
}

function mineRow(order) {
  const actions = order.status === "MANUFACTURING_STARTED"
    ? [["complete", "action.complete"], ["release", "action.release"]]
    : [["ship", "action.ship"]];
  return h("tr", { dataset: { orderId: order.order_id }, onclick: (e) => { if (!e.target.closest("button")) openDetail(order.order_id); } },
    h("td", { class: "mono", title: order.order_id }, shortId(order.order_id)),
    h("td", {}, materialCell(order)),
    h("td", { class: "num" }, order.quantity),
    h("td", {}, size(order.size_mm)),
    h("td", {}, duration(order.print_time_s)),
    h("td", {}, t(`status.${order.status}`)),
    h("td", { dataset: { age: order.created_at_ms } }, age(order.created_at_ms)),
    h("td", { class: "actions" }, actions.map(([action, label]) =>
      h("button", { type: "button", dataset: { action }, onclick: () => act(order, action) }, t(label)))),
  );
}

function renderApproved() {
  const body = $("approved").tBodies[0];
  body.replaceChildren(...state.approved.map(approvedRow));
  $("approved-empty").hidden = state.approved.length > 0;
  $("more").hidden = !state.cursor;
}

function renderMine() {
  const body = $("mine").tBodies[0];
  body.replaceChildren(...state.mine.map(mineRow));
  $("mine-empty").hidden = state.mine.length > 0;
}

let noticeTimer = 0;
function notice(text, kind = "info") {
  const slot = document.querySelector("[data-testid=notice]");
  slot.textContent = text;
  slot.dataset.kind = kind;
  slot.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => (slot.hidden = true), 8000);
}

// ---- Loading -----------------------------------------------------------------

function listUrl(status, extra = {}) {
  const params = new URLSearchParams({ status, limit: String(PAGE), ...extra });
  for (const [name, value] of [...params]) if (!value) params.delete(name);
  return `/v1/operator/orders?${params}`;
}

async function loadApproved({ more = false } = {}) {
  const extra = { ...state.filters };
  if (more && state.cursor) extra.cursor = state.cursor;
  const page = await api("GET", listUrl(APPROVED, extra));
  for (const order of page.orders) seen(order);
  const orders = more ? [...state.approved, ...page.orders] : page.orders;
  const unique = new Map(orders.map((o) => [o.order_id, o]));
  state.approved = [...unique.values()].filter((o) => o.status === APPROVED).sort(newestFirst);
  state.cursor = page.next_cursor;
  renderApproved();
  document.body.dataset.approvedFrom = page.served_from;
}

async function loadMine() {
  const pages = await Promise.all(MINE.map((status) => api("GET", listUrl(status, { assignee: state.session.name, limit: "200" }))));
  state.mine = pages.flatMap((p) => p.orders).sort(newestFirst);
  for (const order of state.mine) seen(order);
  renderMine();
}

async function reloadAll() {
  await Promise.all([loadApproved(), loadMine()]);
}

// ---- Live changes ------------------------------------------------------------

/// One order's new state, from the stream or an answer to our own call.
function apply(order) {
  if (!seen(order)) return;
  const inApproved = state.approved.findIndex((o) => o.order_id === order.order_id);
  if (order.status === APPROVED && matchesFilters(order)) {
    const last = state.approved[state.approved.length - 1];
    const belongs = !state.cursor || !last || newestFirst(order, last) < 0;
    if (inApproved >= 0) state.approved[inApproved] = order;
    else if (belongs) state.approved.push(order);
    state.approved.sort(newestFirst);
  } else if (inApproved >= 0) {
    state.approved.splice(inApproved, 1);
    if (state.detail === order.order_id && order.assignee && order.assignee !== state.session.name) {
      notice(t("notice.taken_by", { order: shortId(order.order_id), name: order.assignee }));
    }
  }
  renderApproved();
  const inMine = state.mine.findIndex((o) => o.order_id === order.order_id);
  const mine = MINE.includes(order.status) && order.assignee === state.session.name;
  if (mine && inMine >= 0) state.mine[inMine] = order;
  else if (mine) state.mine.push(order);
  else if (inMine >= 0) state.mine.splice(inMine, 1);
  state.mine.sort(newestFirst);
  renderMine();
}

function connectLive() {
  const indicator = $("live");
  const setLive = (on) => {
    indicator.dataset.state = on ? "on" : "off";
    indicator.dataset.i18n = on ? "live.on" : "live.off";
    indicator.textContent = t(indicator.dataset.i18n);
    document.body.dataset.live = on ? "on" : "off";
  };
  let everOpen = false;
  const source = new EventSource("/v1/events");
  source.addEventListener("ready", () => {
    // After a reconnect, changes may have been missed: read the lists again.
    if (everOpen) reloadAll().catch(() => {});
    everOpen = true;
    setLive(true);
  });
  source.addEventListener("order", (event) => {
    try {
      apply(JSON.parse(event.data));
    } catch {
      // A malformed event changes nothing; the next reload corrects it.
    }
  });
  source.addEventListener("resync", () => reloadAll().catch(() => {}));
  source.addEventListener("error", () => setLive(false));
}

// ---- Actions -----------------------------------------------------------------

async function take(order) {
  const row = document.querySelector(`[data-role=approved] tr[data-order-id="${order.order_id}"]`);
  row?.querySelectorAll("button").forEach((b) => (b.disabled = true));
  try {
    const taken = await api("POST", `/v1/orders/${encodeURIComponent(order.order_id)}/take`);
    apply(summaryOf(taken));
    notice(t("notice.took", { order: shortId(order.order_id) }), "ok");
  } catch (e) {
    if (e.status === 409 && e.details && e.details.assignee) {
      notice(t("notice.taken_by", { order: shortId(order.order_id), name: e.details.assignee }), "warn");
    } else if (e.status === 409) {
      notice(t("notice.gone", { order: shortId(order.order_id) }), "warn");
    } else {
      notice(t("notice.failed", { message: e.message }), "error");
    }
    // Whoever took it, it is not on the list any more.
    if (e.status === 409) {
      state.approved = state.approved.filter((o) => o.order_id !== order.order_id);
      renderApproved();
    } else {
      row?.querySelectorAll("button").forEach((b) => (b.disabled = false));
    }
  }
}

async function act(order, action) {
  try {
    const changed = await api("POST", `/v1/orders/${encodeURIComponent(order.order_id)}/${action}`);
    apply(summaryOf(changed));
  } catch (e) {
    notice(t("notice.failed", { message: e.message }), "error");
    await loadMine().catch(() => {});
  }
}

/// The list's view of a full order (an answer to take, complete, …).
function summaryOf(order) {
  const quote = order.quote || {};
  return {
    order_id: order.order_id, source: order.source, seller: order.seller, customer: order.customer,
    material: order.material, colour: order.colour, quantity: order.quantity, status: order.status,
    total: order.total, currency: order.currency, assignee: order.assignee, created_at_ms: order.created_at_ms,
    updated_at_ms: order.updated_at_ms, version: order.version, part_count: order.part_count ?? 1,
    machine: quote.machine ? quote.machine.name : null,
    size_mm: quote.analysis && quote.analysis.bounding_box ? quote.analysis.bounding_box.size : null,
    print_time_s: quote.print_time_s ?? null,
  };
}

// ---- Detail ------------------------------------------------------------------

function fact(label, value) {
  return [h("dt", {}, t(label)), h("dd", {}, value)];
}

async function openDetail(orderId) {
  state.detail = orderId;
  const panel = $("detail");
  panel.hidden = false;
  $("detail-title").textContent = t("detail.title", { order: shortId(orderId) });
  const order = await api("GET", `/v1/orders/${encodeURIComponent(orderId)}`);
  if (state.detail !== orderId) return;
  // The lines and the total are the order's; the facts, the warnings, the
  // preview and the download are a part's: the order's one, or the part
  // picked of an order of several.
  const quote = order.quote;
  $("lines").replaceChildren(...(quote ? lineRows(quote) : [h("tr", {}, h("td", { colspan: 3 }, t("detail.no_quote")))]));
  $("detail-total").textContent = money(order.total, order.currency);
  const parts = order.parts || [];
  const picker = $("parts");
  picker.hidden = parts.length < 2;
  picker.replaceChildren(...parts.map((part, i) => h("button", {
    type: "button", dataset: { part: part.position }, onclick: () => showPart(order, parts, i),
  }, t("detail.part", { n: part.position }))));
  await showPart(order, parts, 0);
}

async function showPart(order, parts, index) {
  const orderId = order.order_id;
  const part = parts[index] || order;
  const quote = parts.length ? parts[index].quote : order.quote;
  for (const button of $("parts").children) button.classList.toggle("active", Number(button.dataset.part) === part.position);
  const link = $("download");
  link.href = `/v1/models/${part.model_id}`;
  // The server names the file by its format (STL, 3MF or OBJ).
  link.setAttribute("download", "");
  const a = quote ? quote.analysis : null;
  $("facts").replaceChildren(...[
    fact("fact.seller", order.seller),
    order.customer ? fact("fact.customer", order.customer) : [],
    parts.length ? fact("fact.part", `${part.quantity} × ${part.material.toUpperCase()}${part.colour ? ` · ${part.colour}` : ""}`) : [],
    parts.length && part.failure ? fact("fact.failure", part.failure) : [],
    quote ? fact("fact.machine", quote.machine.name) : [],
    a ? fact("col.size", size(a.bounding_box.size)) : [],
    quote ? fact("fact.volume", `${number(quote.volume_mm3 / 1000, 1)} cm³`) : [],
    quote ? fact("fact.area", `${number(quote.surface_area_mm2 / 100, 1)} cm²`) : [],
    quote ? fact("fact.material_g", `${number(quote.material_g, 1)} g`) : [],
    quote ? fact("fact.support", `${number(quote.support_cm3, 1)} cm³`) : [],
    quote ? fact("col.print_time", duration(quote.print_time_s)) : [],
    quote ? fact("fact.layers", number(quote.layers)) : [],
    quote ? fact("fact.triangles", number(quote.triangles)) : [],
    a ? fact("fact.shells", number(a.shells)) : [],
    quote ? fact("fact.watertight", t(quote.watertight ? "yes" : "no")) : [],
  ].flat());
  const warnings = quote ? plainWarnings(quote) : [];
  $("warnings").replaceChildren(...(warnings.length ? warnings.map((w) => h("li", {}, w)) : [h("li", { class: "muted" }, t("detail.no_warnings"))]));
  await preview(part.model_id, a ? a.overhang_angle_deg : state.reference.overhang_angle_deg, orderId);
}

async function preview(modelId, angle, orderId) {
  state.preview?.dispose();
  state.preview = null;
  // A fresh canvas each time: one that held a WebGL context cannot draw 2D.
  const canvas = h("canvas", { "data-testid": "preview", width: 480, height: 360 });
  $("preview-slot").replaceChildren(canvas);
  const response = await fetch(`/v1/models/${modelId}`, { credentials: "same-origin" });
  if (!response.ok || state.detail !== orderId) return;
  try {
    const corners = parseStl(await response.arrayBuffer());
    if (state.detail !== orderId) return;
    state.preview = showModel(canvas, corners, angle);
    canvas.dataset.ready = "true";
  } catch (e) {
    if (!(e instanceof StlError)) throw e;
    const why = e.message.startsWith("not") ? "quote.no_preview" : "quote.preview_skipped";
    $("preview-slot").append(h("p", { class: "muted" }, t(why)));
  }
}

function closeDetail() {
  state.detail = null;
  state.preview?.dispose();
  state.preview = null;
  $("detail").hidden = true;
}

// ---- Start -------------------------------------------------------------------

function fillFilters() {
  const options = (select, items, current) => {
    select.replaceChildren(h("option", { value: "" }, t("filter.any")), ...items.map((id) => h("option", { value: id, selected: id === current }, id.toUpperCase())));
  };
  options($("filter-material"), state.reference.materials.map((m) => m.id), state.filters.material);
  options($("filter-machine"), state.reference.machines.map((m) => m.id), state.filters.machine);
}

async function main() {
  mountLanguageSwitch();
  state.session = await requireSession("operator", {
    form: $("sign-in"), app: $("app"), who: $("who"), signOutButton: $("sign-out"),
  });
  document.body.dataset.signedIn = "true";
  // The list first: it is what an operator waits for.
  const [reference] = await Promise.all([loadReference(), loadApproved()]);
  state.reference = reference;
  document.body.dataset.loaded = "approved";
  fillFilters();
  for (const name of ["material", "machine"]) {
    $(`filter-${name}`).addEventListener("change", (e) => {
      state.filters[name] = e.target.value;
      loadApproved().catch((err) => notice(t("notice.failed", { message: err.message }), "error"));
    });
  }
  $("more").addEventListener("click", () => loadApproved({ more: true }).catch((err) => notice(err.message, "error")));
  $("detail-close").addEventListener("click", closeDetail);
  onLanguageChange(() => {
    fillFilters();
    renderApproved();
    renderMine();
  });
  connectLive();
  await loadMine();
  // Ages move on without a reload.
  setInterval(() => {
    for (const cell of document.querySelectorAll("td[data-age]")) cell.textContent = age(Number(cell.dataset.age));
  }, 30000);
}

main().catch((e) => notice(t("notice.failed", { message: e.message }), "error"));
