// What both pages share: the language, calls to the farm's API with the
// session's CSRF token, signing in and out, and the reference data kept in
// Local Storage.
//
// The key a person types is sent once, to exchange it for a session cookie
// (HttpOnly: no script, ours included, can read it). The key is never
// stored; the CSRF token lives in memory only. Local Storage holds only
// what is not secret, under keys starting `farm.`.

import { messages } from "farm/i18n.js";

const STORE_PREFIX = "farm.";

export const storage = {
  get(name) {
    try {
      const text = localStorage.getItem(STORE_PREFIX + name);
      return text === null ? null : JSON.parse(text);
    } catch {
      return null;
    }
  },
  set(name, value) {
    try {
      localStorage.setItem(STORE_PREFIX + name, JSON.stringify(value));
    } catch {
      // A full or disabled storage only costs a download next time.
    }
  },
};

// ---- Language --------------------------------------------------------------

function preferredLanguage() {
  const chosen = storage.get("lang");
  if (chosen && messages[chosen]) return chosen;
  for (const tag of navigator.languages || [navigator.language || "en"]) {
    const base = String(tag).toLowerCase().split("-")[0];
    if (messages[base]) return base;
  }
  return "en";
}

let language = preferredLanguage();
const languageListeners = [];

export function currentLanguage() {
  return language;
}

/// The message `key` in the current language, with `{name}` filled in.
export function t(key, vars = {}) {
  const text = messages[language][key] ?? messages.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in vars ? String(vars[name]) : `{${name}}`));
}

/// Fills every `data-i18n` element under `root` (and `data-i18n-*`
/// attributes, e.g. `data-i18n-placeholder`).
export function translate(root = document) {
  document.documentElement.lang = language;
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-aria-label]")) {
    el.setAttribute("aria-label", t(el.dataset.i18nAriaLabel));
  }
  for (const button of document.querySelectorAll("button[data-lang]")) {
    button.setAttribute("aria-pressed", String(button.dataset.lang === language));
  }
}

export function onLanguageChange(listener) {
  languageListeners.push(listener);
}

export function setLanguage(next) {
  if (!messages[next]) return;
  language = next;
  storage.set("lang", next);
  translate();
  for (const listener of languageListeners) listener(next);
}

export function mountLanguageSwitch() {
  for (const button of document.querySelectorAll("button[data-lang]")) {
    button.addEventListener("click", () => setLanguage(button.dataset.lang));
  }
  translate();
}

// ---- Calls -----------------------------------------------------------------

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || "http";
    this.details = error.details;
  }
}

let csrfToken = null;
let onSessionEnded = () => {};

/// The header a state-changing call made outside `api` (an upload with
/// progress) must carry.
export function csrfHeaders() {
  return csrfToken ? { "x-csrf-token": csrfToken } : {};
}

/// Calls the farm. JSON in and out; a state-changing call carries the
/// session's CSRF token. A 401 means the session ended.
export async function api(method, path, { json, body, headers = {} } = {}) {
  const init = { method, headers: { ...headers }, credentials: "same-origin", cache: "no-store" };
  if (json !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (body !== undefined) {
    init.body = body;
  }
  if (method !== "GET" && method !== "HEAD" && csrfToken) init.headers["x-csrf-token"] = csrfToken;
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, { error: { code: "network", message: t("error.network") } });
  }
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  if (!response.ok) {
    if (response.status === 401 && path !== "/v1/session") onSessionEnded();
    throw new ApiError(response.status, parsed);
  }
  return parsed;
}

// ---- Session ---------------------------------------------------------------

/// The session of this browser, or null: `{kind, name, csrf_token}`.
export async function currentSession() {
  try {
    const session = await api("GET", "/v1/session");
    csrfToken = session.csrf_token;
    return session;
  } catch (e) {
    if (e.status === 401) return null;
    throw e;
  }
}

async function signIn(key) {
  const session = await api("POST", "/v1/session", { json: { key } });
  csrfToken = session.csrf_token;
  return session;
}

export async function signOut() {
  try {
    await api("DELETE", "/v1/session");
  } finally {
    csrfToken = null;
  }
}

/// Shows the sign-in form until a session of `kind` exists, then resolves
/// with it. The form is `input[name=key]` with a submit button.
export async function requireSession(kind, { form, app, who, signOutButton }) {
  const show = (signedIn) => {
    form.closest("section").hidden = signedIn;
    app.hidden = !signedIn;
  };
  onSessionEnded = () => {
    show(false);
    setFormError(form, t("error.session_ended"));
  };
  signOutButton.addEventListener("click", async () => {
    try {
      await signOut();
    } finally {
      location.reload();
    }
  });
  let session = await currentSession().catch(() => null);
  if (session && session.kind !== kind) session = null;
  if (!session) {
    show(false);
    session = await new Promise((resolve) => {
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        const input = form.querySelector("input[name=key]");
        const button = form.querySelector("button[type=submit]");
        button.disabled = true;
        setFormError(form, "");
        try {
          const signed = await signIn(input.value.trim());
          if (signed.kind !== kind) {
            await signOut().catch(() => {});
            setFormError(form, t("signin.wrong_kind", { kind: t(`signin.kind.${kind}`) }));
            return;
          }
          input.value = "";
          resolve(signed);
        } catch (e) {
          setFormError(form, e.message);
        } finally {
          button.disabled = false;
        }
      });
    });
  }
  show(true);
  who.textContent = t("signed_in_as", { name: session.name });
  onLanguageChange(() => (who.textContent = t("signed_in_as", { name: session.name })));
  return session;
}

function setFormError(form, message) {
  const slot = form.querySelector("[data-role=error]");
  slot.textContent = message;
  slot.hidden = !message;
}

// ---- Reference data --------------------------------------------------------

/// Where the reference data came from on this load: `network` (downloaded
/// in full) or `revalidated` (the stored copy, confirmed by a 304).
export let referenceSource = null;

/// Materials, colours, machines and statuses: from Local Storage when the
/// farm confirms the stored copy is current (a conditional request answered
/// 304, no body), else downloaded and stored.
export async function loadReference() {
  const stored = storage.get("reference");
  const headers = {};
  if (stored && stored.etag && stored.data) headers["if-none-match"] = stored.etag;
  // no-store: the browser's own cache must not answer for us, so what the
  // page keeps (and the 304) is visible and ours.
  const response = await fetch("/v1/reference", { headers, credentials: "same-origin", cache: "no-store" });
  if (response.status === 304 && stored) {
    referenceSource = "revalidated";
    document.documentElement.dataset.reference = referenceSource;
    return stored.data;
  }
  if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
  const data = await response.json();
  storage.set("reference", { etag: response.headers.get("etag"), data });
  referenceSource = "network";
  document.documentElement.dataset.reference = referenceSource;
  return data;
}

// ---- Formatting ------------------------------------------------------------

export function money(amount, currency) {
  if (amount === null || amount === undefined) return "—";
  try {
    return new Intl.NumberFormat(language, { style: "currency", currency: currency || "EUR" }).format(amount);
  } catch {
    return `${amount.toFixed(2)} ${currency || ""}`.trim();
  }
}

export function number(value, digits = 0) {
  if (value === null || value === undefined || Number.isNaN(value)) return "—";
  return new Intl.NumberFormat(language, { maximumFractionDigits: digits, minimumFractionDigits: digits }).format(value);
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const minutes = Math.max(1, Math.round(seconds / 60));
  const h = Math.floor(minutes / 60);
  const m = minutes % 60;
  return h > 0 ? t("time.h_m", { h, m }) : t("time.m", { m });
}

export function size(mm) {
  if (!mm) return "—";
  return mm.map((v) => number(v, v < 10 ? 1 : 0)).join(" × ");
}

export function age(ms, now = Date.now()) {
  const minutes = Math.floor((now - ms) / 60000);
  if (minutes < 1) return t("age.now");
  if (minutes < 60) return t("age.min", { n: minutes });
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return t("age.h", { n: hours });
  return t("age.d", { n: Math.floor(hours / 24) });
}

export function shortId(id) {
  return id.length > 8 ? id.slice(-8) : id;
}

/// An element with attributes and children, without HTML strings.
export function h(tag, attributes = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "dataset") Object.assign(el.dataset, value);
    else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/// Warnings in plain words, from a quote's facts rather than its English
/// sentences (a sentence the page does not know is shown as it is).
export function plainWarnings(quote) {
  const found = [];
  const analysis = quote.analysis || {};
  if (quote.watertight === false || analysis.watertight === false) found.push(t("warn.open_mesh"));
  if ((quote.support_cm3 || 0) > 0 || (analysis.overhang_area_mm2 || 0) > 1) found.push(t("warn.supports"));
  const fit = (quote.machine && quote.machine.fit) || analysis.fit;
  if (fit && fit.fits === false) found.push(t("warn.does_not_fit"));
  if (analysis.units_guess && analysis.units_guess !== "mm") found.push(t("warn.inches"));
  const known = [/mesh is open/, /does not fit/, /suggests the file is in/];
  for (const text of [...(quote.warnings || []), ...(analysis.warnings || [])]) {
    if (!known.some((pattern) => pattern.test(text)) && !found.includes(text)) found.push(t("warn.other", { text }));
  }
  return [...new Set(found)];
}

/// A quote's line items as table rows.
export function lineRows(quote) {
  return (quote.line_items || []).map((line) =>
    h("tr", {}, h("td", {}, line.label), h("td", { class: "basis" }, line.basis), h("td", { class: "num" }, money(line.amount, quote.currency))),
  );
}
