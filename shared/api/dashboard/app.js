// The operators' dashboard: one page, its views chosen by the URL fragment
// (#/overview, #/ingestions, ...), every figure read from the API with the
// signed-in bearer token. No framework and no build step: what is committed
// is what the browser runs.

// ------------------------------------------------------------ the API

// The API lives beside the page: /dashboard -> /, /prod/dashboard -> /prod/.
const API = new URL(".", location.href);
const TOKEN_KEY = "order-pipeline.token";
const POLL_MS = 5000;

/** The token: in memory, and in sessionStorage so a reload keeps it (a
 * tab's own storage, gone with the tab; never a cookie, never sent to the
 * server but as the Authorization header). */
let token = sessionStorage.getItem(TOKEN_KEY);

function signIn(newToken) {
  token = newToken.trim();
  sessionStorage.setItem(TOKEN_KEY, token);
}

function signOut(reason) {
  token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  showSignIn(reason);
}

/** An answer the API gave instead of what was asked: its problem+json. */
class ApiProblem extends Error {
  constructor(status, problem, missingScope) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
    this.missingScope = missingScope;
  }
}

/** The scope a 403's `WWW-Authenticate: Bearer ... scope="x"` names. */
function missingScope(response) {
  const header = response.headers.get("www-authenticate") || "";
  const match = /scope="([^"]+)"/.exec(header);
  return match ? match[1] : null;
}

/**
 * Calls the API. `etag`: the ETag of the copy the caller holds; the answer
 * is then `{status: 304}` while nothing changed. A 401 signs out (the token
 * expired or was refused) and shows the sign-in screen.
 */
async function api(path, { method = "GET", body, etag, headers = {} } = {}) {
  const request = { method, headers: { ...headers }, cache: "no-store" };
  if (token) request.headers.Authorization = `Bearer ${token}`;
  if (etag) request.headers["If-None-Match"] = etag;
  if (body !== undefined) {
    request.headers["Content-Type"] = "application/json";
    request.body = JSON.stringify(body);
  }
  const response = await fetch(new URL(path, API), request);
  if (response.status === 304) return { status: 304, etag };
  const type = response.headers.get("content-type") || "";
  const data = type.includes("json") ? await response.json() : await response.text();
  if (response.ok) {
    return { status: response.status, data, etag: response.headers.get("etag") };
  }
  const problem = typeof data === "object" && data ? data : { detail: String(data) };
  if (response.status === 401) {
    signOut(problem.detail || "The API refused the token.");
  }
  throw new ApiProblem(response.status, problem, missingScope(response));
}

// ------------------------------------------------------------ the DOM

/** An element: `h("td", {class: "num"}, "12")`. Text is always text, never
 * HTML, whatever the API's strings hold. */
function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (value === true) element.setAttribute(name, "");
    else element.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

const SVG = "http://www.w3.org/2000/svg";
function s(tag, attrs = {}, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) element.setAttribute(name, String(value));
  for (const child of children) element.append(child instanceof Node ? child : String(child));
  return element;
}

/** The children that are there: `cond ? x : null` leaves nothing, not "null". */
const present = (children) => children.flat().filter((c) => c !== null && c !== undefined && c !== false);

/** Replaces `element`'s children with those present. */
function fill(element, ...children) {
  element.replaceChildren(...present(children));
}

/** Appends the children present. */
function add(element, ...children) {
  element.append(...present(children));
}

const main = () => document.getElementById("main");
const number = (n) => (typeof n === "number" ? n.toLocaleString("en-US") : "–");

function setStatus(text) {
  document.getElementById("status").textContent = text;
}

/** How long ago an RFC 3339 time was, in words. */
function ago(when) {
  if (!when) return "";
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(when)) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} days ago`;
}

/** What went wrong, where the view's content would be. */
function problemBox(error) {
  if (error instanceof ApiProblem && error.status === 403) {
    const scope = error.missingScope ? ` It needs the ${error.missingScope} scope.` : "";
    return h("p", { class: "error", role: "alert", "data-problem": "403" },
      `Your token may not do this.${scope} `, error.message);
  }
  if (error instanceof ApiProblem) {
    return h("p", { class: "error", role: "alert", "data-problem": error.status }, error.message);
  }
  return h("p", { class: "error", role: "alert" }, `The API did not answer: ${error.message}`);
}

function table(headings, rows) {
  return h("div", { class: "table-wrap" },
    h("table", {},
      h("thead", {}, h("tr", {}, headings.map(([text, cls]) => h("th", { class: cls, scope: "col" }, text)))),
      h("tbody", {}, rows)));
}

// ------------------------------------------------------------ sign-in

/** How to sign in (`/dashboard/config.json`): the OpenID Connect
 * provider's authorization-code sign-in, when the deployment has one. */
let config = null;
async function dashboardConfig() {
  if (!config) {
    const response = await fetch(new URL("dashboard/config.json", API), { cache: "no-store" });
    config = response.ok ? await response.json() : { oidc: null };
  }
  return config;
}

const PKCE_KEY = "order-pipeline.pkce";
const base64url = (bytes) =>
  btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const random = (n) => base64url(crypto.getRandomValues(new Uint8Array(n)));
// Where the provider sends the browser back: this page, without query or fragment.
const redirectUri = () => new URL("dashboard", API).href;

/** Authorization code with PKCE (RFC 7636): a verifier only this tab
 * knows, its SHA-256 challenge sent along, and a state against forged
 * answers; no client secret, the page being a public client. */
async function startSignIn(oidc) {
  const verifier = random(32);
  const state = random(16);
  const challenge = base64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  sessionStorage.setItem(PKCE_KEY, JSON.stringify({ verifier, state }));
  const url = new URL(oidc.authorization_endpoint);
  url.search = new URLSearchParams({
    response_type: "code", client_id: oidc.client_id, redirect_uri: redirectUri(), scope: oidc.scope,
    state, code_challenge: challenge, code_challenge_method: "S256",
  });
  location.assign(url);
}

/** The provider's answer (`?code=…&state=…`, or `?error=…`): the code is
 * exchanged for the access token, and the answer removed from the address
 * bar. Returns what went wrong, if anything. */
async function finishSignIn() {
  const params = new URLSearchParams(location.search);
  if (!params.has("code") && !params.has("error")) return null;
  const pending = JSON.parse(sessionStorage.getItem(PKCE_KEY) || "null");
  sessionStorage.removeItem(PKCE_KEY);
  history.replaceState(null, "", `${location.pathname}#/overview`);
  if (params.has("error")) {
    return `The provider refused the sign-in: ${params.get("error_description") || params.get("error")}`;
  }
  if (!pending || pending.state !== params.get("state")) {
    return "That sign-in answer is not for the sign-in this tab started; sign in again.";
  }
  const { oidc } = await dashboardConfig();
  if (!oidc) return "This deployment has no sign-in provider configured.";
  const response = await fetch(oidc.token_endpoint, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code", code: params.get("code"), redirect_uri: redirectUri(),
      client_id: oidc.client_id, code_verifier: pending.verifier,
    }),
  }).catch((error) => ({ ok: false, status: error.message, json: async () => ({}) }));
  const answer = await response.json().catch(() => ({}));
  if (!response.ok || !answer.access_token) {
    return `The provider issued no token: ${answer.error_description || answer.error || response.status}`;
  }
  signIn(answer.access_token);
  return null;
}

function showSignIn(reason) {
  stopPolling();
  document.getElementById("nav").hidden = true;
  document.getElementById("sign-out").hidden = true;
  const field = h("textarea", { id: "token", name: "token", autocomplete: "off", spellcheck: "false",
    "aria-describedby": "token-help" });
  const form = h("form", {
    onsubmit: (event) => {
      event.preventDefault();
      if (field.value.trim()) {
        signIn(field.value);
        location.hash = "#/overview";
        route();
      }
    },
  },
  h("label", { for: "token" }, "Bearer token"), field,
  h("p", { id: "token-help", class: "muted" },
    "Locally, open the sign-in link `make up` printed (or paste the output of `make -s token`). ",
    "The token stays in this tab and is sent only to this API."),
  h("button", { type: "submit" }, "Sign in"));
  const provider = h("div", { "data-part": "provider" });
  fill(main(), h("section", { class: "signin", "data-view": "sign-in" },
    h("h1", {}, "Sign in"),
    reason ? h("p", { class: "error", role: "alert" }, reason) : null,
    provider,
    form));
  dashboardConfig().then(({ oidc }) => {
    if (oidc) {
      fill(provider, h("p", {}, h("button", { type: "button", id: "sign-in-provider", onclick: () => startSignIn(oidc) },
        "Sign in with your organisation's account")), h("p", { class: "muted" }, "Or paste a token:"));
    }
  });
}

/** A token handed over in the fragment (`#token=...`, the link `make up`
 * prints, also when opened in a tab already showing the dashboard): taken,
 * and removed from the address bar and the history. */
function takeTokenFromFragment() {
  const params = new URLSearchParams(location.hash.slice(1));
  const handed = params.get("token");
  if (!handed) return;
  signIn(handed);
  history.replaceState(null, "", `${location.pathname}${location.search}#/overview`);
}

// ------------------------------------------------------------ polling

let poller = null;
function poll(refresh) {
  stopPolling();
  poller = setInterval(() => refresh().catch((e) => setStatus(`refresh failed: ${e.message}`)), POLL_MS);
}
function stopPolling() {
  if (poller) clearInterval(poller);
  poller = null;
}

/** A resource polled with If-None-Match: `get()` returns the data, fetched
 * again only when the API's ETag changed. */
function conditional(path) {
  let held = null;
  return {
    path,
    async get() {
      const answer = await api(path, { etag: held?.etag });
      if (answer.status !== 304) held = answer;
      return { data: held.data, changed: answer.status !== 304 };
    },
  };
}

// ------------------------------------------------------------ views

const views = {
  overview: overviewView,
  ingestions: ingestionsView,
  ingestion: ingestionView,
  lookup: lookupView,
  order: orderView,
  customer: customerView,
  unused: unusedView,
  sell: sellView,
  upload: uploadView,
  problems: problemsView,
};

const FIGURES = [
  ["orders", "Orders"],
  ["customers", "Customers"],
  ["tickets", "Tickets"],
  ["unused_barcodes", "Unused barcodes"],
  ["rejected_rows", "Rejected rows"],
];

async function overviewView(root) {
  let limit = Number(sessionStorage.getItem("order-pipeline.top-limit")) || 10;
  const summary = conditional("analytics/summary");
  let top = conditional(`analytics/top-customers?limit=${limit}`);
  const cards = h("div", { class: "cards" });
  const chart = h("div", { "data-part": "top-customers" });
  const select = h("select", {
    id: "top-limit",
    onchange: async () => {
      limit = Number(select.value);
      sessionStorage.setItem("order-pipeline.top-limit", String(limit));
      top = conditional(`analytics/top-customers?limit=${limit}`);
      await refresh();
    },
  }, [5, 10, 25, 50, 100].map((n) => h("option", { value: n, selected: n === limit }, n)));
  add(root, 
    h("h1", {}, "Overview"),
    cards,
    h("section", { class: "panel" },
      h("form", { class: "inline", onsubmit: (e) => e.preventDefault() },
        h("h2", { class: "grow" }, "Top customers"),
        h("label", { for: "top-limit" }, "Show", select)),
      chart));

  async function refresh() {
    const [s, t] = await Promise.all([summary.get(), top.get()]);
    if (s.changed) renderFigures(cards, s.data);
    else refreshAgo(cards);
    if (t.changed) fill(chart, topChart(t.data));
    setStatus(`updated ${new Date().toLocaleTimeString("en-GB")}`);
  }
  await refresh();
  poll(refresh);
}

function renderFigures(cards, summary) {
  const last = summary.last_ingestion;
  fill(cards,
    ...FIGURES.map(([key, label]) =>
      h("div", { class: "card" },
        h("div", { class: "label" }, label),
        h("div", { class: "value", "data-figure": key }, number(summary[key])))),
    h("div", { class: "card wide" },
      h("div", { class: "label" }, "Last ingestion"),
      last
        ? h("div", {},
          h("a", { href: `#/ingestions/${last.id}`, "data-figure": "last_ingestion" }, last.key), " ",
          h("span", { class: `badge ${last.status}` }, last.status), " ",
          h("span", { class: "muted", "data-ago": last.finished_at || "" }, ago(last.finished_at)))
        : h("div", { class: "muted", "data-figure": "last_ingestion" }, "none yet")));
}

function refreshAgo(cards) {
  for (const span of cards.querySelectorAll("[data-ago]")) span.textContent = ago(span.dataset.ago);
}

/** Horizontal bars, one per customer, with the numbers as text (and a
 * table for screen readers). */
function topChart(customers) {
  if (!customers.length) return h("p", { class: "muted" }, "No tickets sold yet.");
  const max = Math.max(...customers.map((c) => c.tickets));
  const row = 22, label = 110, width = 640;
  const svg = s("svg", { class: "chart", viewBox: `0 0 ${width} ${customers.length * row + 4}`,
    role: "img", "aria-label": "Tickets per customer" });
  customers.forEach((c, i) => {
    const y = i * row + 2;
    const w = Math.max(2, ((width - label - 60) * c.tickets) / max);
    svg.append(
      s("text", { x: 0, y: y + 15 }, `customer ${c.customer_id}`),
      s("rect", { class: "bar", x: label, y, width: w, height: row - 6, rx: 3 }),
      s("text", { x: label + w + 6, y: y + 15 }, number(c.tickets)));
  });
  const rows = customers.map((c) => h("tr", {},
    h("td", {}, h("a", { href: `#/customers/${c.customer_id}` }, c.customer_id)),
    h("td", { class: "num", "data-tickets": c.customer_id }, number(c.tickets))));
  return h("div", {}, svg,
    h("details", {}, h("summary", {}, "As a table"),
      table([["Customer"], ["Tickets", "num"]], rows)));
}

const STATUSES = ["", "loading", "loaded", "rejected", "failed"];

async function ingestionsView(root, params) {
  const status = params.get("status") || "";
  const cursor = params.get("cursor");
  const select = h("select", {
    id: "status-filter",
    onchange: () => { location.hash = `#/ingestions${select.value ? `?status=${select.value}` : ""}`; },
  }, STATUSES.map((s) => h("option", { value: s, selected: s === status }, s || "any")));
  const inProgress = h("div", { "data-part": "in-progress" });
  const list = h("div", { "data-part": "ledger" });
  add(root, 
    h("h1", {}, "Ingestions"),
    h("section", { class: "panel" }, h("h2", { class: "first" }, "In progress"), inProgress),
    h("section", { class: "panel" },
      h("form", { class: "inline", onsubmit: (e) => e.preventDefault() },
        h("label", { for: "status-filter" }, "Status", select)),
      list));

  async function refresh() {
    const query = new URLSearchParams({ limit: "50" });
    if (status) query.set("status", status);
    if (cursor) query.set("cursor", cursor);
    const [loading, page] = await Promise.all([
      api("ingestions?status=loading&limit=20"),
      api(`ingestions?${query}`),
    ]);
    fill(inProgress, loading.data.items.length
      ? ledgerTable(loading.data.items)
      : h("p", { class: "muted" }, "Nothing is loading."));
    const next = page.data.next_cursor;
    const nextQuery = new URLSearchParams(status ? { status } : {});
    if (next) nextQuery.set("cursor", next);
    fill(list,
      page.data.items.length ? ledgerTable(page.data.items) : h("p", { class: "muted" }, "No ingestions."),
      next ? h("p", {}, h("a", { href: `#/ingestions?${nextQuery}` }, "Older ingestions →")) : null);
  }
  await refresh();
  poll(refresh);
}

function ledgerTable(items) {
  return table(
    [["Id"], ["File"], ["Kind"], ["Status"], ["Read", "num"], ["Accepted", "num"], ["Rejected", "num"],
      ["Duplicates", "num"], ["Warnings", "num"], ["No barcodes", "num"], ["Duration", "num"], ["Started"],
      ["Files"]],
    items.map((i) => h("tr", { "data-ingestion": i.id },
      h("td", {}, h("a", { href: `#/ingestions/${i.id}` }, i.id)),
      h("td", { class: "mono" }, i.key),
      h("td", {}, i.kind || "–"),
      h("td", {}, h("span", { class: `badge ${i.status}` }, i.status)),
      h("td", { class: "num" }, number(i.rows_read)),
      h("td", { class: "num" }, number(i.accepted)),
      h("td", { class: "num" }, number(i.rejected)),
      h("td", { class: "num" }, number(i.duplicates)),
      h("td", { class: "num" }, number(i.warnings)),
      h("td", { class: "num" }, number(i.orders_without_barcodes)),
      h("td", { class: "num" }, i.duration_ms == null ? "–" : `${number(i.duration_ms)} ms`),
      h("td", {}, h("time", { datetime: i.started_at, title: i.started_at }, ago(i.started_at))),
      h("td", {},
        i.report_url ? h("a", { href: i.report_url }, "report") : null, " ",
        i.rejects_url ? h("a", { href: i.rejects_url }, "rejects") : null))));
}

async function ingestionView(root, params, id) {
  const { data: row } = await api(`ingestions/${encodeURIComponent(id)}`);
  add(root, 
    h("p", {}, h("a", { href: "#/ingestions" }, "← Ingestions")),
    h("h1", {}, "Ingestion ", row.id, ": ", h("span", { class: "mono" }, row.key)),
    h("div", { class: "cards" },
      [["Status", h("span", { class: `badge ${row.status}`, "data-field": "status" }, row.status)],
        ["Kind", row.kind || "–"], ["Rows read", number(row.rows_read)], ["Accepted", number(row.accepted)],
        ["Rejected", number(row.rejected)], ["Duplicates", number(row.duplicates)],
        ["Warnings", number(row.warnings)], ["Without barcodes", number(row.orders_without_barcodes)],
        ["Duration", row.duration_ms == null ? "–" : `${number(row.duration_ms)} ms`]]
        .map(([label, value]) => h("div", { class: "card" }, h("div", { class: "label" }, label),
          h("div", { class: "value" }, value)))),
    row.error ? h("p", { class: "error", "data-field": "error" }, row.error) : null,
    h("p", {},
      row.report_url ? h("a", { href: row.report_url }, "Download the report (JSON)") : null, " ",
      row.rejects_url ? h("a", { href: row.rejects_url }, "Download the rejected rows (CSV)") : null));
  if (!row.report_key) {
    add(root, h("p", { class: "muted" }, row.status === "loading" ? "Loading…" : "No report."));
    if (row.status === "loading") poll(async () => route());
    return;
  }
  const { data: report } = await api(`ingestions/${encodeURIComponent(id)}/report`);
  const without = report.first_orders_without_barcodes || [];
  add(root, h("section", { class: "panel", "data-part": "report" },
    h("h2", { class: "first" }, "Problems"),
    report.counts.orders_without_barcodes
      ? h("p", { "data-part": "without-barcodes" },
        `${number(report.counts.orders_without_barcodes)} orders were stored without barcodes (yet), first `,
        without.flatMap((o, i) => [i ? ", " : "", h("a", { href: `#/orders/${o.order_id}` }, o.order_id)]),
        ". ", h("a", { href: "#/problems" }, "Those still without"), " are under Problems.")
      : null,
    report.error ? h("p", { class: "error" }, report.error) : null,
    report.problems.length
      ? table([["Line", "num"], ["Severity"], ["Field"], ["Value"], ["Reason"]],
        report.problems.map((p) => h("tr", {},
          h("td", { class: "num" }, p.line), h("td", {}, p.severity), h("td", {}, p.field),
          h("td", { class: "mono" }, p.value), h("td", {}, p.reason))))
      : h("p", { class: "muted" }, "No problems."),
    report.problems.length < report.counts.rejected + report.counts.duplicates + report.counts.warnings
      ? h("p", { class: "muted" }, "The report lists the first problems by line; the rejected rows file has every rejected row.")
      : null));
}

function lookupView(root) {
  const orderField = h("input", { id: "order-id", name: "order_id", inputmode: "numeric", required: true });
  const customerField = h("input", { id: "customer-id", name: "customer_id", inputmode: "numeric", required: true });
  add(root, 
    h("h1", {}, "Orders and customers"),
    h("section", { class: "panel" },
      h("form", { class: "inline", onsubmit: (e) => { e.preventDefault(); location.hash = `#/orders/${orderField.value.trim()}`; } },
        h("label", { for: "order-id" }, "Order id", orderField), h("button", { type: "submit" }, "Look up order"))),
    h("section", { class: "panel" },
      h("form", { class: "inline", onsubmit: (e) => { e.preventDefault(); location.hash = `#/customers/${customerField.value.trim()}`; } },
        h("label", { for: "customer-id" }, "Customer id", customerField), h("button", { type: "submit" }, "Look up customer"))));
}

function provenance(source) {
  if (!source) return "–";
  if (source.sale_id != null) return `sale ${source.sale_id}`;
  if (source.file) return `${source.file}, line ${source.line}`;
  return "–";
}

async function orderView(root, params, id) {
  const { data: order } = await api(`orders/${encodeURIComponent(id)}`);
  add(root, 
    h("p", {}, h("a", { href: "#/lookup" }, "← Orders and customers")),
    h("h1", {}, "Order ", h("span", { "data-field": "order_id" }, order.order_id)),
    h("p", {}, "Customer ", h("a", { href: `#/customers/${order.customer_id}`, "data-field": "customer_id" }, order.customer_id),
      ` · ${order.tickets} tickets · from ${provenance(order.source)} · ${order.created_at}`),
    table([["Barcode"], ["From"]], order.barcodes.map((b) => h("tr", {},
      h("td", { class: "mono" }, b.barcode), h("td", {}, provenance(b.source))))));
}

async function customerView(root, params, id) {
  const cursor = params.get("cursor");
  const query = new URLSearchParams({ limit: "50" });
  if (cursor) query.set("cursor", cursor);
  const [{ data: customer }, { data: page }] = await Promise.all([
    api(`customers/${encodeURIComponent(id)}`),
    api(`customers/${encodeURIComponent(id)}/orders?${query}`),
  ]);
  add(root, 
    h("p", {}, h("a", { href: "#/lookup" }, "← Orders and customers")),
    h("h1", {}, "Customer ", customer.customer_id),
    h("p", { "data-field": "customer-summary" }, `${number(customer.orders)} orders · ${number(customer.tickets)} tickets`),
    table([["Order"], ["Tickets", "num"], ["Created"]], page.items.map((o) => h("tr", {},
      h("td", {}, h("a", { href: `#/orders/${o.order_id}` }, o.order_id)),
      h("td", { class: "num" }, o.tickets), h("td", {}, o.created_at)))),
    page.next_cursor
      ? h("p", {}, h("a", { href: `#/customers/${customer.customer_id}?cursor=${encodeURIComponent(page.next_cursor)}` }, "More orders →"))
      : null);
}

async function unusedView(root, params) {
  const cursor = params.get("cursor");
  const query = new URLSearchParams({ limit: "100" });
  if (cursor) query.set("cursor", cursor);
  const { data } = await api(`analytics/unused-barcodes?${query}`);
  add(root, 
    h("h1", {}, "Unused barcodes"),
    h("p", {}, h("strong", { "data-figure": "unused_count" }, number(data.count)), " barcodes are not sold yet."),
    data.barcodes.length
      ? h("ul", { class: "mono", "data-part": "unused" }, data.barcodes.map((b) => h("li", {}, b)))
      : h("p", { class: "muted" }, "None."),
    data.next_cursor
      ? h("p", {}, h("a", { href: `#/unused?cursor=${encodeURIComponent(data.next_cursor)}` }, "Next page →"))
      : null);
}

function sellView(root) {
  const customer = h("input", { id: "sale-customer", name: "customer_id", inputmode: "numeric", required: true });
  const tickets = h("input", { id: "sale-tickets", name: "tickets", type: "number", min: 1, max: 100, value: 1, required: true });
  const result = h("div", { "data-part": "sale-result", "aria-live": "polite" });
  const submit = h("button", { type: "submit" }, "Sell");
  // One key per sale the operator means to make: a retry after a network
  // error sends the same key, so it cannot sell twice.
  let idempotencyKey = null;
  const changed = () => { idempotencyKey = null; };
  customer.addEventListener("input", changed);
  tickets.addEventListener("input", changed);
  const form = h("form", {
    class: "inline",
    onsubmit: async (event) => {
      event.preventDefault();
      idempotencyKey ||= crypto.randomUUID();
      submit.disabled = true;
      try {
        const { status, data } = await api("orders", {
          method: "POST",
          headers: { "Idempotency-Key": idempotencyKey },
          body: { customer_id: Number(customer.value), tickets: Number(tickets.value) },
        });
        idempotencyKey = null;
        fill(result, h("p", { class: "ok", "data-sold": data.order_id },
          status === 201 ? "Sold: " : "Already sold with this key: ",
          h("a", { href: `#/orders/${data.order_id}` }, `order ${data.order_id}`),
          ` for customer ${data.customer_id}, ${data.tickets} tickets.`));
      } catch (error) {
        if (error instanceof ApiProblem) idempotencyKey = null;
        fill(result, problemBox(error));
      } finally {
        submit.disabled = false;
      }
    },
  },
  h("label", { for: "sale-customer" }, "Customer id", customer),
  h("label", { for: "sale-tickets" }, "Tickets (1–100)", tickets),
  submit);
  add(root, h("h1", {}, "Sell tickets"),
    h("p", { class: "muted" }, "Sells unused barcodes to a new order, all or nothing."),
    h("section", { class: "panel" }, form, result));
}

const fileLine = (where) => (where && where.file ? `${where.file}, line ${where.line}` : "a sale");

/** The problem lists: what is wrong now, across all files. Each panel
 * shows its count and pages on in place. */
const PROBLEM_LISTS = [
  {
    name: "orders-without-barcodes", title: "Orders without barcodes",
    note: "Stored, but left out of processed_orders.csv until a barcodes file brings their barcodes.",
    headings: [["Order"], ["Customer"], ["From"]],
    row: (o) => [h("a", { href: `#/orders/${o.order_id}` }, o.order_id),
      h("a", { href: `#/customers/${o.customer_id}` }, o.customer_id), provenance(o.source)],
  },
  {
    name: "rejected-barcodes", title: "Barcodes rejected as copies",
    note: "A barcode's first occurrence wins; each later copy is rejected.",
    headings: [["Barcode"], ["Copy"], ["Winner"], ["Reason"]],
    row: (r) => [h("span", { class: "mono" }, r.barcode), fileLine(r.copy), fileLine(r.winner), r.reason],
  },
  {
    name: "waiting-barcodes", title: "Barcodes waiting for their order",
    note: "Stored for orders no file has brought yet; they count as tickets once the order arrives.",
    headings: [["Barcode"], ["Order"], ["From"]],
    row: (b) => [h("span", { class: "mono" }, b.barcode), b.order_id, provenance(b.source)],
  },
  {
    name: "order-conflicts", title: "Order conflicts",
    note: "Rows that gave a stored order (or one earlier in the file) to another customer.",
    headings: [["Order"], ["Customer given"], ["Belongs to"], ["Copy"], ["Winner"]],
    row: (c) => [h("a", { href: `#/orders/${c.order_id}` }, c.order_id), c.customer_id,
      c.winner_customer_id ?? "–", fileLine(c.copy), fileLine(c.winner)],
  },
];

async function problemsView(root) {
  add(root, h("h1", {}, "Problems"));
  await Promise.all(PROBLEM_LISTS.map(async (list) => {
    const count = h("span", { "data-count": list.name });
    const body = h("div");
    const more = h("div");
    add(root, h("section", { class: "panel", "data-problems": list.name },
      h("h2", { class: "first" }, list.title, " ", h("span", { class: "muted" }, "("), count, h("span", { class: "muted" }, ")")),
      h("p", { class: "muted" }, list.note), body, more));
    const rows = [];
    const load = async (cursor) => {
      const query = new URLSearchParams({ limit: "20" });
      if (cursor) query.set("cursor", cursor);
      const { data } = await api(`problems/${list.name}?${query}`);
      count.textContent = number(data.count);
      rows.push(...data.items.map((item) => h("tr", {}, list.row(item).map((cell) => h("td", {}, cell)))));
      fill(body, rows.length ? table(list.headings, rows) : h("p", { class: "ok" }, "None."));
      fill(more, data.next_cursor
        ? h("button", { type: "button", class: "secondary", onclick: () => load(data.next_cursor) }, "More")
        : null);
    };
    await load(null);
  }));
}

/** Drop or choose CSV files: each is uploaded straight to the bucket with a
 * presigned PUT (POST /uploads), then followed in the ledger until its
 * ingestion has loaded or rejected it. */
function uploadView(root) {
  const input = h("input", { id: "upload-files", type: "file", accept: ".csv,text/csv", multiple: true });
  const list = h("ul", { class: "uploads", "data-part": "uploads" });
  const zone = h("div", { class: "drop", "data-part": "drop-zone" },
    h("p", {}, "Drop orders or barcodes CSV files here, or"),
    h("label", { for: "upload-files", class: "button-like" }, "Choose files", input));
  const start = (files) => { for (const file of files) uploadOne(file, list); };
  input.addEventListener("change", () => { start([...input.files]); input.value = ""; });
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    start([...e.dataTransfer.files]);
  });
  add(root, h("h1", {}, "Upload"),
    h("p", { class: "muted" },
      "Each file goes to incoming/ in the bucket (a new version if the name exists) and is ingested like any file dropped there."),
    zone, list);
}

const FOLLOW_MS = 1000;
const FOLLOW_FOR_MS = 10 * 60 * 1000;

async function uploadOne(file, list) {
  const state = h("span", { "data-upload-state": "uploading" }, "asking for an upload link…");
  const item = h("li", { "data-upload": file.name }, h("span", { class: "mono" }, file.name), " — ", state);
  list.prepend(item);
  const say = (status, ...text) => { state.dataset.uploadState = status; fill(state, ...text); };
  try {
    const { data: upload } = await api("uploads", { method: "POST", body: { name: file.name, size: file.size } });
    say("uploading", `uploading ${number(file.size)} bytes…`);
    const put = await fetch(upload.url, { method: upload.method, headers: upload.headers, body: file });
    if (!put.ok) {
      say("failed", h("span", { class: "error" }, `the bucket refused the upload (HTTP ${put.status}): ${await put.text()}`));
      return;
    }
    const version = put.headers.get("x-amz-version-id") || "";
    const etag = (put.headers.get("etag") || "").replaceAll('"', "");
    say("ingesting", "uploaded; waiting for its ingestion…");
    const row = await followIngestion(upload.key, version, etag, (current) =>
      say("ingesting", `ingestion ${current.id}: ${current.status}…`));
    if (!row) {
      say("waiting", "uploaded; no ingestion has finished yet — see Ingestions");
      return;
    }
    say(row.status,
      h("a", { href: `#/ingestions/${row.id}` }, `ingestion ${row.id}`), " ",
      h("span", { class: `badge ${row.status}` }, row.status), " ",
      row.status === "loaded"
        ? `${number(row.accepted)} rows accepted, ${number(row.rejected)} rejected`
        : h("span", { class: "error", "data-upload-error": "" }, row.error || "see its report"));
  } catch (error) {
    say("failed", problemBox(error));
  }
}

/** The ledger row of this version of `key` once it has finished (loaded or
 * rejected); `progress` hears of it meanwhile. */
async function followIngestion(key, version, etag, progress) {
  const until = Date.now() + FOLLOW_FOR_MS;
  while (Date.now() < until) {
    const { data } = await api(`ingestions?${new URLSearchParams({ key, limit: "20" })}`);
    const row = data.items.find((i) => (version ? i.version_id === version : i.etag === etag));
    if (row && (row.status === "loaded" || row.status === "rejected")) return row;
    if (row) progress(row);
    await new Promise((resolve) => setTimeout(resolve, FOLLOW_MS));
  }
  return null;
}

// ------------------------------------------------------------ routing

/** `#/ingestions/12?status=loaded` -> ["ingestion", params, "12"]. */
function parseRoute() {
  const [path, query = ""] = location.hash.replace(/^#\/?/, "").split("?");
  const params = new URLSearchParams(query);
  const [first = "overview", id] = path.split("/");
  const singular = { ingestions: "ingestion", orders: "order", customers: "customer" };
  if (id && singular[first]) return [singular[first], params, decodeURIComponent(id), first];
  return [first, params, undefined, first];
}

async function route() {
  stopPolling();
  takeTokenFromFragment();
  if (!token) return showSignIn();
  document.getElementById("nav").hidden = false;
  document.getElementById("sign-out").hidden = false;
  const [name, params, id, section] = parseRoute();
  const view = views[name] || overviewView;
  const navSection = { order: "lookup", customer: "lookup" }[name] || section;
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.getAttribute("href") === `#/${navSection}`) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const root = h("section", { "data-view": view === overviewView ? "overview" : name });
  fill(main(), root);
  try {
    await view(root, params, id);
  } catch (error) {
    if (error instanceof ApiProblem && error.status === 401) return;
    add(root, problemBox(error));
  }
}

document.getElementById("sign-out").addEventListener("click", () => signOut("Signed out."));
window.addEventListener("hashchange", route);
finishSignIn().then((failure) => (failure ? signOut(failure) : route()));
