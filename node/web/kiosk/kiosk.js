// The kiosk of a service point (issue 16), over the node's JSON API: sign in with the
// service point's client token (kept in this tab's sessionStorage only), pick a scenario,
// show the OpenID4VP request as a large QR code, poll its decision, show it in large type
// in Chinese and English together, and list the counter's decisions of the day.
// Everything the node says is put in with textContent (el), never as HTML.
import { el } from "/common/i18n.js";
import { qrImage } from "/common/qr.js";

const TOKEN = "ccx-kiosk-token";
const POLL_MS = 1000; // the node's default rate limit is 5 a second, 20 at once

// Both languages at once: [Chinese, English]. {name} is replaced from vars.
const M = {
  signedOut: ["已退出。", "Signed out."],
  badToken: ["凭据无效或已被撤销，请重新登录。", "These credentials are unknown or revoked: sign in again."],
  forbidden: ["这些凭据无权执行此操作，请重新登录或联系管理员。", "These credentials may not do this: sign in again or ask the administrator."],
  noScenarios: ["这些凭据没有可核验的场景，请联系管理员。", "These credentials may verify no scenario: ask the administrator."],
  counter: ["服务点：{client}（{department}）", "Service point: {client} ({department})"],
  unreachable: ["网络不通，无法连接节点。请检查网络后重试；本页会继续尝试。", "The node can't be reached. Check the network and try again; the page keeps trying."],
  unavailable: ["暂时无法核验（{code}）。请稍后再试；其间请按柜台常规流程办理。", "Verification is unavailable for now ({code}). Try again in a few minutes; meanwhile serve the visitor by the counter's usual procedure."],
  rateLimited: ["请求过多，请 {seconds} 秒后再试。", "Too many requests: try again in {seconds} s."],
  notFound: ["找不到该请求，请重新开始。", "No such request: start again."],
  invalid: ["节点拒绝了该请求（{code}）。", "The node refused the request ({code})."],
  failed: ["出错了（HTTP {status}）。", "Something went wrong (HTTP {status})."],
  copied: ["已复制。", "Copied."],
  copyFailed: ["无法复制，请手动选择链接。", "Could not copy: select the link by hand."],
  expiresIn: ["{seconds} 秒后过期", "expires in {seconds} s"],
  waiting: ["等待访客的钱包回应…", "Waiting for the visitor's wallet…"],
  stillTrying: ["网络中断，正在重试…", "The network is down, retrying…"],
  qrLabel: ["请求二维码：{name}", "The request as a QR code: {name}"],
  granted: ["准予", "Granted"],
  denied: ["未获准予", "Not granted"],
  refused: ["无法核验", "Could not be verified"],
  declined: ["访客已拒绝", "The visitor declined"],
  expired: ["请求已过期", "The request expired"],
  unavailableTitle: ["暂不可用", "Unavailable"],
  tier: ["档次：{tier}", "Tier: {tier}"],
  from: ["凭证来自：{city}", "Credential from: {city}"],
  shown: ["{label_zh}：{value}", "{label_en}: {value}"],
  reason: ["原因", "Reason"],
  nextDenied: ["请按柜台常规流程办理（例如缴纳押金）。", "Serve the visitor by the counter's usual procedure (a deposit, say)."],
  nextRefresh: ["请访客在钱包中从所在城市重新领取信用凭证，然后点“下一位”再试。", "Ask the visitor to refresh her credential from her home city in her wallet, then press \"Next visitor\" to try again."],
  nextHomeDown: ["访客所在城市暂时无法确认凭证状态，请几分钟后再试。", "The visitor's home city can't confirm the credential now: try again in a few minutes."],
  nextRetry: ["请访客重试一次；若仍失败，请按柜台常规流程办理。", "Ask the visitor to try once more; if it fails again, use the counter's usual procedure."],
  nextDeclined: ["访客未分享任何信息。可按常规流程办理；她改变主意时点“下一位”。", "Nothing was shared. Use the usual procedure, or press \"Next visitor\" if she changes her mind."],
  nextExpired: ["点“下一位”生成新的二维码。", "Press \"Next visitor\" for a new QR code."],
  nextUnavailable: ["请检查网络，稍后点“下一位”重试；其间请按柜台常规流程办理。", "Check the network and press \"Next visitor\" to try again; meanwhile use the counter's usual procedure."],
};

// the domestic-service credential's claims a scenario may show (node/scenarios.py)
const SHOWN_LABELS = {
  certified_since: ["持证起始日期", "Certified since"],
  background_check_date: ["背景审查日期", "Background check date"],
  training_certificates: ["培训证书数", "Training certificates"],
  rating_count: ["评价数", "Ratings"],
};

// a credential that no longer stands: the visitor can fetch a fresh one
const REFRESH = new Set(["attestation_revoked", "attestation_suspended", "expired", "attestation_too_old",
  "recipient_not_named", "issuer_suspended", "unknown_kid"]);
const HOME_DOWN = new Set(["status_unavailable", "status_list_unreachable", "status_list_expired",
  "registry_unavailable", "mapping_table_unavailable"]);

function fill(text, vars) {
  return text.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ""));
}

/** A message in both languages: <span lang=zh-CN>..</span> <span lang=en>..</span>. */
function both(key, vars = {}, tag = "span") {
  const [zh, en] = M[key];
  return el(tag, { className: "both" },
    el("span", { lang: "zh-CN" }, fill(zh, vars)), " ", el("span", { lang: "en" }, fill(en, vars)));
}

const $ = (id) => document.getElementById(id);
const SECTIONS = ["signin", "menu", "request", "decision"];
let scenarios = [];
let current = null; // {scenario, transaction_id, deadline}
let pollTimer = null;
let tickTimer = null;

function show(section) {
  for (const id of SECTIONS) $(id).classList.toggle("hidden", id !== section);
  const signedIn = section !== "signin";
  $("day").classList.toggle("hidden", !signedIn);
  $("signout").classList.toggle("hidden", !signedIn);
}

function notify(kind, ...parts) {
  const box = $("notice");
  box.className = `notice ${kind}`;
  box.replaceChildren(...parts);
}

function clearNotice() {
  $("notice").className = "notice hidden";
  $("notice").replaceChildren();
}

class ApiError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

/** The node's JSON; ApiError with status 0 when the node can't be reached. */
async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${sessionStorage.getItem(TOKEN) ?? ""}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method, headers, cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "unreachable", "network");
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = data?.error ?? {};
    throw new ApiError(response.status, error.code ?? `http_${response.status}`,
      error.message ?? response.statusText, response.headers.get("Retry-After"));
  }
  return data;
}

/** A clear message for a failed call; 401 and 403 sign the kiosk out. */
function explain(error) {
  if (!(error instanceof ApiError)) throw error;
  const detail = error.message && error.status ? el("p", { className: "detail", lang: "en" }, error.message) : null;
  switch (error.status) {
    case 0: return notify("bad", both("unreachable", {}, "p"));
    case 401: signOut(); return notify("bad", both("badToken", {}, "p"), detail);
    case 403: signOut(); return notify("bad", both("forbidden", {}, "p"), detail);
    case 404: return notify("warn", both("notFound", {}, "p"), detail);
    case 422: return notify("bad", both("invalid", { code: error.code }, "p"), detail);
    case 429: return notify("warn", both("rateLimited", { seconds: error.retryAfter ?? "1" }, "p"));
    case 503: return notify("warn", both("unavailable", { code: error.code }, "p"), detail);
    default:
      if (error.status >= 500) return notify("bad", both("unavailable", { code: error.code }, "p"), detail);
      return notify("bad", both("failed", { status: error.status }, "p"), detail);
  }
}

// --- sign in and out ---------------------------------------------------------------------

function signOut() {
  stopWaiting();
  sessionStorage.removeItem(TOKEN);
  scenarios = [];
  $("scenarios").replaceChildren();
  $("day-rows").replaceChildren();
  $("token").value = "";
  show("signin");
  $("token").focus();
}

async function signIn() {
  let me;
  try {
    me = await api("GET", "/v1/service-point");
  } catch (error) {
    explain(error);
    return;
  }
  clearNotice();
  scenarios = me.scenarios;
  $("counter").replaceChildren(both("counter", { client: me.client_id, department: me.department }));
  $("scenarios").replaceChildren(...scenarios.map((s) => {
    const button = el("button", { type: "button", className: "scenario" },
      el("span", { lang: "zh-CN", className: "zh" }, s.name_zh),
      el("span", { lang: "en", className: "en" }, s.name_en));
    button.dataset.scenario = s.scenario;
    button.addEventListener("click", () => startRequest(s));
    return button;
  }));
  if (!scenarios.length) notify("warn", both("noScenarios", {}, "p"));
  show("menu");
  $("scenarios").querySelector("button")?.focus();
  loadDay();
}

// --- a visitor: the request and its decision -----------------------------------------------

function stopWaiting() {
  clearTimeout(pollTimer);
  clearInterval(tickTimer);
  pollTimer = tickTimer = null;
  current = null;
}

async function startRequest(scenario) {
  stopWaiting();
  clearNotice();
  let made;
  try {
    made = await api("POST", "/v1/presentation-requests", { scenario: scenario.scenario });
  } catch (error) {
    if (error instanceof ApiError && (error.status === 0 || error.status >= 500)) {
      return decide({ outcome: "unavailable", code: error.code, message: error.message }, scenario);
    }
    explain(error);
    return;
  }
  // the node's clock may differ from this one: count its lifetime down on ours
  const lifetime = Math.max(0, made.expires_at - made.issued_at);
  current = { scenario, transaction_id: made.transaction_id, deadline: Date.now() + lifetime * 1000 };
  $("request-title").replaceChildren(
    el("span", { lang: "zh-CN" }, made.name_zh), " ", el("span", { lang: "en" }, made.name_en));
  $("qr").replaceChildren(qrImage(made.request, `${fill(M.qrLabel[0], { name: made.name_zh })} / ${fill(M.qrLabel[1], { name: made.name_en })}`));
  $("request-link").textContent = made.request;
  $("open-here").href = made.request;
  $("open-web-wallet").href = new URL(`/wallet/?request=${encodeURIComponent(made.request)}`, location.origin).href;
  $("waiting").replaceChildren(both("waiting"));
  show("request");
  tick();
  tickTimer = setInterval(tick, 250);
  pollTimer = setTimeout(poll, POLL_MS);
}

function secondsLeft() {
  return current ? Math.max(0, Math.ceil((current.deadline - Date.now()) / 1000)) : 0;
}

function tick() {
  if (!current) return;
  $("countdown").replaceChildren(both("expiresIn", { seconds: secondsLeft() }));
}

async function poll() {
  if (!current) return;
  const waiting = current;
  let result;
  try {
    result = await api("GET", `/v1/presentation-requests/${encodeURIComponent(waiting.transaction_id)}`);
  } catch (error) {
    if (current !== waiting) return;
    if (error instanceof ApiError && (error.status === 0 || error.status >= 500 || error.status === 429)) {
      // nothing lost: the node keeps the answer until it is read
      $("waiting").replaceChildren(error.status === 429
        ? both("rateLimited", { seconds: error.retryAfter ?? "3" }) : both("stillTrying"));
      if (secondsLeft() > 0) {
        pollTimer = setTimeout(poll, POLL_MS * (error.status === 429 ? 3 : 1));
      } else {
        decide({ outcome: "unavailable", code: error.code }, waiting.scenario);
      }
      return;
    }
    stopWaiting();
    explain(error);
    show("menu");
    return;
  }
  if (current !== waiting) return; // cancelled meanwhile
  if (result.outcome === "pending") {
    $("waiting").replaceChildren(both("waiting"));
    // the node's clock says pending; past our countdown the visitor must start again
    if (secondsLeft() <= 0) return decide({ outcome: "expired" }, waiting.scenario);
    pollTimer = setTimeout(poll, POLL_MS);
    return;
  }
  decide(result, waiting.scenario);
}

const OUTCOME_CLASS = { granted: "ok", denied: "bad", refused: "bad", declined: "warn", expired: "warn", unavailable: "warn" };

function nextStepOf(result) {
  switch (result.outcome) {
    case "granted": return null;
    case "denied": return "nextDenied";
    case "declined": return "nextDeclined";
    case "expired": return "nextExpired";
    case "unavailable": return "nextUnavailable";
    default:
      if (REFRESH.has(result.code)) return "nextRefresh";
      if (HOME_DOWN.has(result.code)) return "nextHomeDown";
      return "nextRetry";
  }
}

// the code is the node's, the same in both languages: said once
function reasonLine(code) {
  return el("p", { className: "reason" },
    el("span", { lang: "zh-CN" }, M.reason[0]), " ", el("span", { lang: "en" }, M.reason[1]), "： ",
    el("code", {}, code));
}

function decide(result, scenario) {
  stopWaiting();
  current = null;
  const outcome = result.outcome;
  $("decision").dataset.outcome = outcome;
  $("outcome-box").className = `notice outcome ${OUTCOME_CLASS[outcome] ?? "warn"}`;
  $("outcome").replaceChildren(both(outcome === "unavailable" ? "unavailableTitle" : outcome));
  const details = [];
  if (outcome === "granted") {
    if (result.tier) details.push(both("tier", { tier: result.tier }, "p"));
    details.push(el("p", { className: "benefit" },
      el("span", { lang: "zh-CN" }, result.benefit_zh ?? result.benefit ?? ""), " ",
      el("span", { lang: "en" }, result.benefit ?? "")));
    if (result.issuer_city) details.push(both("from", { city: result.issuer_city }, "p"));
    // a domestic-service scenario's claims it shows (issue 18, docs/CREDENTIALS.md)
    for (const [name, value] of Object.entries(result.shown ?? {})) {
      const [zh, en] = SHOWN_LABELS[name] ?? [name, name];
      details.push(both("shown", { label_zh: zh, label_en: en, value }, "p"));
    }
  }
  for (const reason of result.reasons ?? []) {
    if (outcome === "granted") continue;
    details.push(reasonLine(reason.code), el("p", { className: "detail", lang: "en" }, reason.message));
  }
  if ((outcome === "refused" || outcome === "declined" || outcome === "unavailable") && result.code) {
    details.push(reasonLine(result.code));
    if (result.message && outcome !== "unavailable") {
      details.push(el("p", { className: "detail", lang: "en" }, result.message));
    }
  }
  $("outcome-details").replaceChildren(...details);
  const next = nextStepOf(result);
  $("next-step").replaceChildren(...(next ? [both(next, {}, "p")] : []));
  $("next-visitor").onclick = () => startRequest(scenario);
  show("decision");
  $("next-visitor").focus();
  if (outcome !== "unavailable" && outcome !== "expired") loadDay();
}

// --- the day's list ---------------------------------------------------------------------

function startOfToday() {
  const day = new Date(Date.now());
  day.setHours(0, 0, 0, 0);
  return Math.floor(day.getTime() / 1000);
}

function twoDigits(n) {
  return String(n).padStart(2, "0");
}

async function loadDay() {
  let day;
  try {
    day = await api("GET", `/v1/presentation-requests?since=${startOfToday()}`);
  } catch (error) {
    explain(error);
    return;
  }
  const names = new Map(scenarios.map((s) => [s.scenario, s]));
  const rows = day.decisions.map((d) => {
    const at = new Date(d.at * 1000);
    const named = names.get(d.scenario);
    const row = el("tr", {},
      el("td", { className: "nowrap" }, `${twoDigits(at.getHours())}:${twoDigits(at.getMinutes())}`),
      el("td", {}, named ? el("span", {}, el("span", { lang: "zh-CN" }, named.name_zh), " ", el("span", { lang: "en" }, named.name_en)) : d.scenario),
      el("td", { className: OUTCOME_CLASS[d.outcome] ?? "" }, both(d.outcome),
        d.code ? el("code", { className: "code" }, d.code) : ""),
      el("td", {}, d.tier ?? "—"));
    row.dataset.outcome = d.outcome;
    return row;
  });
  $("day-rows").replaceChildren(...rows);
  $("day-empty").classList.toggle("hidden", rows.length > 0);
}

// --- wiring -------------------------------------------------------------------------------

$("signin-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const token = $("token").value.trim();
  if (!token) return;
  sessionStorage.setItem(TOKEN, token);
  $("token").value = "";
  signIn();
});
$("signout").addEventListener("click", () => {
  signOut();
  notify("ok", both("signedOut", {}, "p"));
});
$("cancel").addEventListener("click", () => {
  stopWaiting();
  show("menu");
});
$("other-scenario").addEventListener("click", () => {
  clearNotice();
  show("menu");
});
$("refresh-day").addEventListener("click", loadDay);
$("copy").addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText($("request-link").textContent);
    notify("ok", both("copied", {}, "p"));
  } catch {
    getSelection().selectAllChildren($("request-link"));
    notify("warn", both("copyFailed", {}, "p"));
  }
});

if (sessionStorage.getItem(TOKEN)) {
  signIn();
} else {
  show("signin");
}
