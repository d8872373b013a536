// The order page: places orders through POST /orders and redraws the latest
// orders from GET /orders every second, so each one moves along its chain
// without a reload.
"use strict";

// Order ids go up to 2^63, past what a JavaScript number holds exactly: keep them as written.
function readJson(text) {
  return JSON.parse(text, (key, value, context) => (key === "orderId" && context ? context.source : value));
}

function element(tag, attributes, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, attributes);
  node.append(...children);
  return node;
}

// Where a chain that stopped ends: shown in red.
const STOPS = new Set(["declined", "cancelled", "refunded"]);

function hop(step) {
  const took = step.tookMs === null ? "" : `+${step.tookMs} ms`;
  const className = ["hop", STOPS.has(step.step) ? "stop" : "", step.at ? "done" : ""].join(" ");
  return element("span", { className, title: step.at || "not yet" },
    step.step, element("span", { className: "took" }, took));
}

function fate(order) {
  if (order.status !== "cancelled") {
    const button = element("button", { className: "cancel", type: "button" }, "Cancel");
    button.addEventListener("click", () => cancelOrder(order.orderId));
    return button;
  }
  const money = order.refunded ? `${order.chain.refund} refunded` : "nothing refunded";
  return element("span", { className: "cancelled" }, `cancelled: ${order.reason} · ${money}`);
}

// The order's trace id; a link to the trace in the trace viewer when traces are exported.
function traceOf(order) {
  const id = order.traceId || "-";
  if (!order.traceUrl) return element("span", { className: "trace" }, `trace ${id}`);
  return element("span", { className: "trace" }, "trace ",
    element("a", { href: order.traceUrl, target: "_blank", rel: "noopener", className: "trace-link" }, id));
}

function orderItem(order) {
  const stopped = order.status === "cancelled";
  const amount = order.chain.amount !== null ? `amount ${order.chain.amount}` : stopped ? "not charged" : "not charged yet";
  const email = order.chain.to || (order.chain.cancelEmailed ? "cancellation emailed" : "no email yet");
  const summary = element("div", { className: "summary" },
    element("b", {}, `Order ${order.orderId}`),
    element("span", {}, `customer ${order.userId} · ${order.qty} × item ${order.itemId}`),
    element("span", {}, amount),
    element("span", {}, email),
    traceOf(order),
    fate(order));
  const chain = element("div", { className: "chain" }, ...order.timeline.map(hop));
  const item = element("li", { className: "order", id: `order-${order.orderId}` }, summary, chain);
  item.dataset.status = order.status;
  return item;
}

// An order whose JSON has not changed keeps its element, so a click on it is
// never lost to a redraw between the press and the release.
function keptOrNew(order) {
  const drawn = JSON.stringify(order);
  const kept = document.getElementById(`order-${order.orderId}`);
  if (kept && kept.dataset.drawn === drawn) return kept;
  const item = orderItem(order);
  item.dataset.drawn = drawn;
  return item;
}

async function refresh() {
  try {
    const response = await fetch("/orders?limit=10", { cache: "no-store" });
    const { orders } = readJson(await response.text());
    document.getElementById("orders").replaceChildren(...orders.map(keptOrNew));
    document.getElementById("empty").hidden = orders.length > 0;
    document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    document.getElementById("updated").textContent = `orders is not answering (${error.message})`;
  }
}

async function countDeadLetters() {
  const shown = document.getElementById("dead-letters");
  try {
    const response = await fetch("/dead-letters", { cache: "no-store" });
    const answer = readJson(await response.text());
    shown.textContent = response.ok ? String(answer.count) : `unknown (${answer.error})`;
  } catch (error) {
    shown.textContent = `unknown (orders is not answering: ${error.message})`;
  }
}

async function placeOrder(event) {
  event.preventDefault();
  const form = event.target;
  const result = document.getElementById("form-result");
  const body = Object.fromEntries(["userId", "itemId", "qty"].map(
    (name) => [name, Number(form.elements[name].value)]));
  try {
    const response = await fetch("/orders", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    const answer = readJson(await response.text());
    result.className = response.ok ? "" : "error";
    const problems = (answer.problems || []).map((p) => `${p.field}: ${p.message}`).join("; ");
    result.textContent = response.ok ? `Order ${answer.orderId} accepted` : [answer.error, problems].join(" ");
  } catch (error) {
    result.className = "error";
    result.textContent = `orders is not answering (${error.message})`;
  }
  refresh();
}

async function cancelOrder(orderId) {
  const result = document.getElementById("form-result");
  try {
    const response = await fetch(`/orders/${orderId}/cancel`, { method: "POST" });
    result.className = response.ok ? "" : "error";
    result.textContent = response.ok ? `Order ${orderId} cancelled` : readJson(await response.text()).error;
  } catch (error) {
    result.className = "error";
    result.textContent = `orders is not answering (${error.message})`;
  }
  refresh();
}

document.getElementById("order-form").addEventListener("submit", placeOrder);
refresh();
setInterval(refresh, 1000);
countDeadLetters();
setInterval(countDeadLetters, 2000);
