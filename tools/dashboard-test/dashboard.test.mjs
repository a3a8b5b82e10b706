// The dashboard in real headless Chromium, against the API that serves it
// (`cargo xtask dashboard` starts both over data loaded through the real
// ingest path, and passes what this needs in the environment). Every figure
// the page shows is checked against the API's own answer.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { createServer } from "node:http";
import { chromium } from "playwright-core";

const BASE = process.env.DASHBOARD_BASE_URL;
const TOKEN = process.env.DASHBOARD_TOKEN;
const READ_ONLY_TOKEN = process.env.DASHBOARD_READ_ONLY_TOKEN;
const SHOTS = process.env.DASHBOARD_SCREENSHOTS;
for (const [name, value] of Object.entries({ DASHBOARD_BASE_URL: BASE, DASHBOARD_TOKEN: TOKEN,
  DASHBOARD_READ_ONLY_TOKEN: READ_ONLY_TOKEN, DASHBOARD_SCREENSHOTS: SHOTS })) {
  if (!value) throw new Error(`${name} is not set: run this through \`cargo xtask dashboard\``);
}
const OIDC_PORT = Number(process.env.DASHBOARD_OIDC_PORT);
const OIDC_CLIENT_ID = process.env.DASHBOARD_OIDC_CLIENT_ID;
const WIDE = { width: 1280, height: 900 };
const NARROW = { width: 390, height: 844 };
// The link `make up` prints.
const signInLink = (token) => `${BASE}/dashboard#token=${encodeURIComponent(token)}`;

/** The API's answer, as the page would get it. */
async function apiGet(path, token = TOKEN) {
  const response = await fetch(`${BASE}/${path}`, { headers: { Authorization: `Bearer ${token}` } });
  assert.equal(response.status, 200, `${path}: ${await response.clone().text()}`);
  return response.json();
}

const shown = (n) => n.toLocaleString("en-US");

let browser;
let context;
let page;
const consoleErrors = [];

/** The OpenID Connect provider's two endpoints, as a signed-in user meets
 * them: /authorize approves at once (remembering the PKCE challenge) and
 * sends the browser back with a code; /token gives the access token only
 * for that code with the verifier whose SHA-256 is the challenge. */
const provider = {
  codes: new Map(),
  exchanges: [],
  server: null,
  start() {
    this.server = createServer((request, response) => {
      const url = new URL(request.url, `http://127.0.0.1:${OIDC_PORT}`);
      if (url.pathname === "/authorize") {
        const p = url.searchParams;
        const ok = p.get("response_type") === "code" && p.get("client_id") === OIDC_CLIENT_ID
          && p.get("code_challenge_method") === "S256" && p.get("redirect_uri") === `${BASE}/dashboard`;
        const back = new URL(p.get("redirect_uri"));
        if (ok) {
          const code = randomBytes(12).toString("hex");
          this.codes.set(code, p.get("code_challenge"));
          back.search = new URLSearchParams({ code, state: p.get("state") });
        } else {
          back.search = new URLSearchParams({ error: "invalid_request", state: p.get("state") || "" });
        }
        response.writeHead(302, { Location: back.href }).end();
        return;
      }
      if (url.pathname === "/token" && request.method === "POST") {
        let body = "";
        request.on("data", (chunk) => { body += chunk; });
        request.on("end", () => {
          const form = new URLSearchParams(body);
          const challenge = this.codes.get(form.get("code"));
          this.codes.delete(form.get("code"));
          const proof = createHash("sha256").update(form.get("code_verifier") || "").digest("base64url");
          const ok = challenge && proof === challenge && form.get("client_id") === OIDC_CLIENT_ID
            && form.get("grant_type") === "authorization_code";
          this.exchanges.push(ok);
          response.writeHead(ok ? 200 : 400, {
            "Content-Type": "application/json", "Access-Control-Allow-Origin": BASE,
          }).end(JSON.stringify(ok
            ? { access_token: TOKEN, token_type: "Bearer", expires_in: 3600 }
            : { error: "invalid_grant" }));
        });
        return;
      }
      response.writeHead(404).end();
    });
    return new Promise((resolve) => this.server.listen(OIDC_PORT, "127.0.0.1", resolve));
  },
};

before(async () => {
  await provider.start();
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM,
    headless: true,
    args: ["--no-sandbox"],
  });
  context = await browser.newContext({ viewport: WIDE });
  page = await context.newPage();
  page.on("console", (message) => {
    if (message.type() === "error") consoleErrors.push(message.text());
  });
  page.on("pageerror", (error) => consoleErrors.push(String(error)));
});

after(async () => {
  await browser?.close();
  provider.server?.close();
});

async function shoot(name) {
  // No placeholder leaked into the page.
  const text = await page.locator("main").innerText();
  assert.doesNotMatch(text, /\b(null|undefined|NaN|\[object Object\])\b/, `${name} shows ${text}`);
  for (const [label, size] of [["wide", WIDE], ["narrow", NARROW]]) {
    await page.setViewportSize(size);
    // Usable at this width: nothing wider than the window.
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `${name} at ${size.width} px is ${overflow} px wider than the window`);
    await page.screenshot({ path: `${SHOTS}/${name}-${label}.png`, fullPage: true });
  }
  await page.setViewportSize(WIDE);
}

async function view(hash, name) {
  await page.evaluate((h) => { location.hash = h; }, hash);
  await page.locator(`[data-view="${name}"]`).waitFor();
}

describe("the dashboard", () => {
  test("signs in through the printed link and takes the token out of the address bar", async () => {
    await page.goto(signInLink(TOKEN));
    await page.locator('[data-view="overview"] [data-figure="orders"]').waitFor();
    // Measured, not asserted (speed is a benchmark): from the navigation's
    // start to the overview's figures and chart on screen.
    const rendered = await page.evaluate(async () => {
      while (!document.querySelector('[data-part="top-customers"] svg, [data-part="top-customers"] p')) {
        await new Promise((resolve) => requestAnimationFrame(resolve));
      }
      return performance.now();
    });
    console.log(`first useful render: ${Math.round(rendered)} ms after the navigation started`);
    assert.ok(!page.url().includes("token"), page.url());
    assert.ok(page.url().endsWith("#/overview"), page.url());
    const kept = await page.evaluate(() => sessionStorage.getItem("order-pipeline.token"));
    assert.equal(kept, TOKEN);
  });

  test("shows every overview figure as the API gives it", async () => {
    const summary = await apiGet("analytics/summary");
    for (const key of ["orders", "customers", "tickets", "unused_barcodes", "rejected_rows"]) {
      assert.equal(await page.locator(`[data-figure="${key}"]`).textContent(), shown(summary[key]), key);
    }
    assert.equal(await page.locator('[data-figure="last_ingestion"]').textContent(), summary.last_ingestion.key);
    const top = await apiGet("analytics/top-customers?limit=10");
    const cells = page.locator("[data-tickets]");
    assert.equal(await cells.count(), top.length);
    for (const [i, customer] of top.entries()) {
      assert.equal(await cells.nth(i).getAttribute("data-tickets"), String(customer.customer_id));
      assert.equal(await cells.nth(i).textContent(), shown(customer.tickets));
    }
    await shoot("overview");
  });

  test("changes the top customers' limit", async () => {
    await page.selectOption("#top-limit", "25");
    const top = await apiGet("analytics/top-customers?limit=25");
    await page.waitForFunction((n) => document.querySelectorAll("[data-tickets]").length === n, top.length);
  });

  test("polls with If-None-Match, so an idle page costs a 304", async () => {
    const answer = await page.waitForResponse(
      (r) => r.url().endsWith("/analytics/summary") && r.status() === 304,
      { timeout: 15000 });
    assert.ok((await answer.request().allHeaders())["if-none-match"]);
  });

  test("lists the ledger and opens a report with its problems", async () => {
    await view("#/ingestions", "ingestions");
    const ledger = await apiGet("ingestions?limit=50");
    const rows = page.locator('[data-part="ledger"] tr[data-ingestion]');
    await rows.first().waitFor();
    assert.equal(await rows.count(), ledger.items.length);
    await page.selectOption("#status-filter", "rejected");
    await page.waitForFunction(() => location.hash === "#/ingestions?status=rejected");
    await page.locator('[data-view="ingestions"] [data-part="ledger"] p').waitFor();
    await shoot("ingestions");
    // An orders file loaded before its barcodes names its orders without
    // barcodes as one figure, not line by line.
    const orders = ledger.items.find((i) => i.kind === "orders");
    await view(`#/ingestions/${orders.id}`, "ingestion");
    const ordersReport = await apiGet(`ingestions/${orders.id}/report`);
    assert.ok(ordersReport.counts.orders_without_barcodes > 0);
    assert.equal(ordersReport.problems.filter((p) => p.code === "no_barcodes").length, 0);
    const without = page.locator('[data-part="without-barcodes"]');
    await without.waitFor();
    assert.match(await without.textContent(), new RegExp(`^${shown(ordersReport.counts.orders_without_barcodes)} orders`));
    assert.equal(await without.locator('a[href^="#/orders/"]').count(), ordersReport.first_orders_without_barcodes.length);
    const barcodes = ledger.items.find((i) => i.kind === "barcodes");
    await view(`#/ingestions/${barcodes.id}`, "ingestion");
    const report = await apiGet(`ingestions/${barcodes.id}/report`);
    await page.locator('[data-part="report"]').waitFor();
    const problems = page.locator('[data-part="report"] tbody tr');
    assert.equal(await problems.count(), report.problems.length);
    if (report.problems.length) {
      const first = report.problems[0];
      const cells = await problems.first().locator("td").allTextContents();
      assert.deepEqual(cells, [String(first.line), first.severity, first.field, first.value, first.reason]);
    }
    await shoot("ingestion");
  });

  test("lists every kind of problem as the API does", async () => {
    await view("#/problems", "problems");
    for (const list of ["orders-without-barcodes", "rejected-barcodes", "waiting-barcodes", "order-conflicts"]) {
      const answer = await apiGet(`problems/${list}?limit=20`);
      const count = page.locator(`[data-count="${list}"]`);
      await page.waitForFunction((l) => document.querySelector(`[data-count="${l}"]`)?.textContent !== "", list);
      assert.equal(await count.textContent(), shown(answer.count), list);
      const rows = page.locator(`[data-problems="${list}"] tbody tr`);
      assert.equal(await rows.count(), answer.items.length, list);
    }
    // A copy's row names the copy's and the winner's file and line.
    const [copy] = (await apiGet("problems/rejected-barcodes?limit=1")).items;
    const cells = await page.locator('[data-problems="rejected-barcodes"] tbody tr').first().locator("td").allTextContents();
    assert.deepEqual(cells, [copy.barcode, `${copy.copy.file}, line ${copy.copy.line}`,
      `${copy.winner.file}, line ${copy.winner.line}`, copy.reason]);
    await shoot("problems");
  });

  test("looks up an order with its barcodes' provenance, and its customer", async () => {
    const [first] = (await apiGet("orders?limit=1")).items;
    const order = await apiGet(`orders/${first.order_id}`);
    await view("#/lookup", "lookup");
    await page.fill("#order-id", String(order.order_id));
    await page.press("#order-id", "Enter");
    await page.locator('[data-view="order"] [data-field="order_id"]').waitFor();
    assert.equal(await page.locator('[data-field="order_id"]').textContent(), String(order.order_id));
    const barcodes = page.locator('[data-view="order"] tbody tr');
    assert.equal(await barcodes.count(), order.barcodes.length);
    if (order.barcodes.length) {
      const source = order.barcodes[0].source;
      assert.equal(await barcodes.first().locator("td").nth(1).textContent(), `${source.file}, line ${source.line}`);
    }
    await shoot("order");
    await page.click('[data-field="customer_id"]');
    await page.locator('[data-view="customer"] [data-field="customer-summary"]').waitFor();
    const customer = await apiGet(`customers/${order.customer_id}`);
    assert.equal(await page.locator('[data-field="customer-summary"]').textContent(),
      `${shown(customer.orders)} orders · ${shown(customer.tickets)} tickets`);
    await shoot("customer");
  });

  test("pages through the unused barcodes", async () => {
    await view("#/unused", "unused");
    const unused = await apiGet("analytics/unused-barcodes?limit=100");
    assert.equal(await page.locator('[data-figure="unused_count"]').textContent(), shown(unused.count));
    assert.deepEqual(await page.locator('[data-part="unused"] li').allTextContents(), unused.barcodes);
    await shoot("unused");
  });

  test("sells tickets, and the overview's figures follow", async () => {
    const before = await apiGet("analytics/summary");
    await view("#/sell", "sell");
    await page.fill("#sale-customer", "424242");
    await page.fill("#sale-tickets", "3");
    await page.click('[data-view="sell"] button[type="submit"]');
    const sold = page.locator("[data-sold]");
    await sold.waitFor();
    const orderId = await sold.getAttribute("data-sold");
    const order = await apiGet(`orders/${orderId}`);
    assert.equal(order.customer_id, 424242);
    assert.equal(order.tickets, 3);
    await shoot("sell");
    await view("#/overview", "overview");
    await page.waitForFunction(
      (tickets) => document.querySelector('[data-figure="tickets"]')?.textContent === tickets,
      shown(before.tickets + 3));
    assert.equal(await page.locator('[data-figure="unused_barcodes"]').textContent(), shown(before.unused_barcodes - 3));
  });

  test("shows the 409 when too few barcodes are unused, and sells nothing", async () => {
    // Sell all but a few through the API first.
    let { count } = await apiGet("analytics/unused-barcodes?limit=0");
    while (count > 5) {
      const tickets = Math.min(100, count - 5);
      const sold = await fetch(`${BASE}/orders`, {
        method: "POST",
        headers: { Authorization: `Bearer ${TOKEN}`, "Content-Type": "application/json" },
        body: JSON.stringify({ customer_id: 7, tickets }),
      });
      assert.equal(sold.status, 201, await sold.text());
      count -= tickets;
    }
    await view("#/sell", "sell");
    await page.fill("#sale-customer", "7");
    await page.fill("#sale-tickets", "6");
    await page.click('[data-view="sell"] button[type="submit"]');
    const refused = page.locator('[data-part="sale-result"] [data-problem="409"]');
    await refused.waitFor();
    assert.match(await refused.textContent(), /only 5 unused barcodes are free, 6 were asked for; nothing was sold/);
    assert.equal((await apiGet("analytics/unused-barcodes?limit=0")).count, 5);
  });

  test("uploads a file straight to the bucket and follows its ingestion until loaded", async () => {
    const before = await apiGet("analytics/summary");
    await view("#/upload", "upload");
    // Order ids above any generated one, for customers 1 and 2.
    const csv = "order_id,customer_id\n900000001,1\n900000002,2\n";
    await page.setInputFiles("#upload-files", {
      name: "dashboard-orders.csv", mimeType: "text/csv", buffer: Buffer.from(csv),
    });
    const done = page.locator('[data-upload="dashboard-orders.csv"] [data-upload-state="loaded"]');
    await done.waitFor({ timeout: 60000 });
    assert.match(await done.textContent(), /2 rows accepted, 0 rejected/);
    const [row] = (await apiGet("ingestions?key=incoming/dashboard-orders.csv")).items;
    assert.equal(row.status, "loaded");
    assert.equal(await done.locator("a").getAttribute("href"), `#/ingestions/${row.id}`);
    await shoot("upload");
    await view("#/overview", "overview");
    await page.waitForFunction(
      (orders) => document.querySelector('[data-figure="orders"]')?.textContent === orders,
      shown(before.orders + 2), { timeout: 15000 });
  });

  test("shows why a file was rejected", async () => {
    await view("#/upload", "upload");
    await page.setInputFiles("#upload-files", {
      name: "not-orders.csv", mimeType: "text/csv", buffer: Buffer.from("hello,world\n1,2\n"),
    });
    const rejected = page.locator('[data-upload="not-orders.csv"] [data-upload-state="rejected"]');
    await rejected.waitFor({ timeout: 60000 });
    const [row] = (await apiGet("ingestions?key=incoming/not-orders.csv")).items;
    assert.equal(row.status, "rejected");
    assert.ok(row.error, "the ledger says why");
    assert.equal(await rejected.locator("[data-upload-error]").textContent(), row.error);
    await rejected.locator("a").click();
    await page.locator('[data-view="ingestion"] [data-field="error"]').waitFor();
    assert.equal(await page.locator('[data-field="error"]').textContent(), row.error);
  });

  test("refuses a name the pipeline would not ingest, before uploading", async () => {
    await view("#/upload", "upload");
    await page.setInputFiles("#upload-files", {
      name: "orders.txt", mimeType: "text/plain", buffer: Buffer.from("order_id,customer_id\n"),
    });
    const refused = page.locator('[data-upload="orders.txt"] [data-problem="400"]');
    await refused.waitFor();
    assert.match(await refused.textContent(), /\.csv/);
    const none = await apiGet("ingestions?key=incoming/orders.txt");
    assert.deepEqual(none.items, []);
  });

  test("says which scope is missing when the token may not sell", async () => {
    await page.goto(signInLink(READ_ONLY_TOKEN));
    await page.locator('[data-view="overview"] [data-figure="orders"]').waitFor();
    await view("#/sell", "sell");
    await page.fill("#sale-customer", "7");
    await page.click('[data-view="sell"] button[type="submit"]');
    const refused = page.locator('[data-problem="403"]');
    await refused.waitFor();
    assert.match(await refused.textContent(), /orders:write/);
  });

  test("reaches every control of every view with the keyboard", async () => {
    await page.goto(signInLink(TOKEN));
    await page.locator('[data-view="overview"] [data-figure="orders"]').waitFor();
    for (const name of ["overview", "ingestions", "problems", "lookup", "unused", "sell", "upload"]) {
      await view(`#/${name}`, name);
      await page.waitForLoadState("networkidle");
      const controls = await page.evaluate(() =>
        [...document.querySelectorAll("a[href], button, select, input, textarea")]
          .filter((e) => e.checkVisibility() || e.classList.contains("skip"))
          .map((e) => e.outerHTML.slice(0, 80)));
      await page.evaluate(() => document.activeElement?.blur());
      const reached = new Set();
      for (let i = 0; i < controls.length + 10; i++) {
        await page.keyboard.press("Tab");
        const focused = await page.evaluate(() => document.activeElement?.outerHTML.slice(0, 80));
        if (focused) reached.add(focused);
      }
      const missed = controls.filter((c) => !reached.has(c));
      assert.deepEqual(missed, [], `controls of ${name} the Tab key never reached`);
    }
    // And a view opens from the keyboard alone.
    await page.locator('#nav a[href="#/unused"]').focus();
    await page.keyboard.press("Enter");
    await page.locator('[data-view="unused"]').waitFor();
  });

  test("lands on the sign-in screen with a bad token, and signs out", async () => {
    await page.goto(signInLink("not-a-token"));
    await page.locator('[data-view="sign-in"] [role="alert"]').waitFor();
    await shoot("sign-in");
    assert.equal(await page.evaluate(() => sessionStorage.getItem("order-pipeline.token")), null);
    // Signing in by pasting the token works too.
    await page.fill("#token", TOKEN);
    await page.click('[data-view="sign-in"] button[type="submit"]');
    await page.locator('[data-view="overview"] [data-figure="orders"]').waitFor();
    await page.click("#sign-out");
    await page.locator('[data-view="sign-in"]').waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem("order-pipeline.token")), null);
    // A reload stays signed out.
    await page.reload();
    await page.locator('[data-view="sign-in"]').waitFor();
  });

  test("signs in with the provider: authorization code with PKCE", async () => {
    await page.goto(`${BASE}/dashboard`);
    await page.locator('[data-view="sign-in"] #sign-in-provider').click();
    await page.locator('[data-view="overview"] [data-figure="orders"]').waitFor();
    assert.deepEqual(provider.exchanges, [true], "one code exchanged, with the right verifier");
    assert.ok(!page.url().includes("code="), page.url());
    assert.equal(await page.evaluate(() => sessionStorage.getItem("order-pipeline.token")), TOKEN);
    assert.equal(await page.evaluate(() => sessionStorage.getItem("order-pipeline.pkce")), null);
    // An answer this tab did not ask for is refused.
    await page.click("#sign-out");
    await page.goto(`${BASE}/dashboard?code=forged&state=forged`);
    const refused = page.locator('[data-view="sign-in"] [role="alert"]');
    await refused.waitFor();
    assert.match(await refused.textContent(), /not for the sign-in this tab started/);
    assert.deepEqual(provider.exchanges, [true], "a forged answer is never exchanged");
  });

  test("logged no script errors", () => {
    // The 400, 401, 403 and 409 the tests provoke show as failed loads, not script errors.
    const errors = consoleErrors.filter((e) => !/status of 40[0139]/.test(e));
    assert.deepEqual(errors, []);
  });
});
