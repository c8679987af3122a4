// The alliance dashboard (issue 16), on the alliance host: what the alliance has
// published, as the host verified it (GET /v1/alliance/overview), and which members'
// nodes are ready (GET /v1/alliance/readiness, asked by the host at most every 15 s).
// The page verifies nothing itself; it shows the server's verdicts. Every value goes in
// with textContent; the curves are SVG drawn here (presentation attributes, no styles).
import { init, t, el as element, lang } from "/common/i18n.js";

const MESSAGES = {
  zh: {
    title: "联盟看板 · 城市信用互认",
    heading: "联盟看板",
    loading: "正在读取……",
    refresh: "刷新",
    "summary.title": "联盟",
    "summary.alliance": "联盟标识",
    "summary.root": "根密钥",
    "summary.current": "当前版本",
    "summary.chain": "版本链",
    "chain.intact": "完整：每个版本都已验证并接续上一版本",
    "chain.broken": "断裂：有版本未通过验证或未接续上一版本",
    "members.title": "成员",
    "members.name": "成员",
    "members.status": "状态",
    "members.ready": "节点就绪",
    "members.keys": "签名密钥",
    "members.certificates": "证书有效期",
    "members.ask": "重新检查就绪状态",
    "members.none": "尚无成员。",
    "status.active": "正常",
    "status.suspended": "已暂停",
    "keys.count": "{valid} 个有效 / 共 {all} 个",
    "certificates.none": "无证书",
    "certificate.valid": "有效至 {until}",
    "certificate.invalid": "无效（{from} — {until}）",
    "ready.ready": "就绪",
    "ready.not_ready": "未就绪",
    "ready.unreachable": "无法连接",
    "ready.asking": "正在询问……",
    "ready.unknown": "未知",
    "ready.registry": "注册表版本 {version}",
    "reason.timeout": "在期限内没有应答",
    "reason.connect_failed": "无法建立连接",
    "reason.redirect": "应答为重定向（不跟随）",
    "reason.bad_answer": "应答异常（HTTP {status}）",
    "reason.checks_failed": "未通过的检查：{checks}",
    "check.registry": "注册表",
    "check.database": "数据库",
    "check.keys": "密钥",
    "readiness.checked": "就绪状态检查于 {time}（主机每 15 秒最多询问成员一次）",
    "versions.title": "注册表版本与链",
    "versions.explain": "每个版本都由联盟根密钥签名，并记录上一版本的哈希；服务器已逐一验证。",
    "versions.version": "版本",
    "versions.issued": "签发",
    "versions.validity": "生效 — 到期",
    "versions.state": "状态",
    "versions.link": "接续上一版本",
    "versions.digest": "SHA-256",
    "version.current": "（当前）",
    "version.in_effect": "生效中",
    "version.expired": "已过期",
    "version.ahead": "尚未生效",
    "version.superseded": "已被取代",
    "version.unverified": "签名未通过：{code}",
    "link.first": "首个版本",
    "link.yes": "是",
    "link.no": "否：链断裂",
    "policy.title": "政策与场景",
    "policy.age": "凭证最长使用期",
    "policy.stale": "状态列表过期容忍",
    "policy.thresholds": "联盟分门槛",
    "policy.scenarios": "场景",
    "policy.scenario": "场景",
    "policy.minimum": "最低联盟分",
    "policy.none": "无联盟统一要求（由服务点决定）",
    "policy.days": "{n} 天",
    "policy.hours": "{n} 小时",
    "scenario.library_deposit_free": "图书馆免押金借阅",
    "scenario.roadside_parking_pay_later": "路边停车先停后付",
    "scenario.car_park_pay_later": "停车场先停后付",
    "scenario.hospital_treat_first_pay_later": "医院先诊疗后付费",
    "scenario.bike_deposit_free": "公共自行车免押金",
    "scenario.missing_document_approval": "缺件容缺受理",
    "curves.title": "各城市的映射曲线",
    "curves.explain": "横轴：城市自己的分数（从最低到最高）；纵轴：对应的联盟分。虚线为联盟分门槛。",
    "curves.plot": "映射曲线图：{cities}。每条曲线把城市本地分数映射到联盟分（0—1000）。",
    "curves.x": "本地分数（占本城市分数范围的比例）",
    "curves.y": "联盟分",
    "curves.tables": "映射表",
    "curves.city": "城市",
    "curves.scale": "本地分数",
    "curves.version": "版本",
    "curves.valid": "有效期",
    "curves.signed": "签名",
    "curves.signed_by": "联盟根密钥 {kid}",
    "curves.unverified": "未通过验证：{code}",
    "curves.points": "{city} 的数据点",
    "curves.local": "本地分数",
    "curves.alliance": "联盟分",
    "curves.none": "尚无映射表。",
    "error.network": "无法连接联盟主机，请检查网络后点“刷新”。已显示的内容保持不变。",
    "error.404": "这里不是联盟主机（404）：只有联盟主机提供看板。",
    "error.429": "请求过于频繁（429），请稍后再试。",
    "error.503": "联盟主机暂时不可用（503），请稍后再试。",
    "error.other": "联盟主机返回错误（HTTP {status}）。",
    "error.readiness": "无法取得成员的就绪状态：{why}",
  },
  en: {
    title: "Alliance dashboard · City Credit Exchange",
    heading: "Alliance dashboard",
    loading: "Loading…",
    refresh: "Refresh",
    "summary.title": "The alliance",
    "summary.alliance": "Alliance id",
    "summary.root": "Root key",
    "summary.current": "Current version",
    "summary.chain": "Version chain",
    "chain.intact": "Intact: every version verified and continues the one before",
    "chain.broken": "Broken: a version does not verify or does not continue the one before",
    "members.title": "Members",
    "members.name": "Member",
    "members.status": "Status",
    "members.ready": "Node ready",
    "members.keys": "Signing keys",
    "members.certificates": "Certificates valid",
    "members.ask": "Check readiness again",
    "members.none": "No members yet.",
    "status.active": "active",
    "status.suspended": "suspended",
    "keys.count": "{valid} valid of {all}",
    "certificates.none": "no certificate",
    "certificate.valid": "valid until {until}",
    "certificate.invalid": "not valid ({from} — {until})",
    "ready.ready": "ready",
    "ready.not_ready": "not ready",
    "ready.unreachable": "unreachable",
    "ready.asking": "asking…",
    "ready.unknown": "unknown",
    "ready.registry": "registry version {version}",
    "reason.timeout": "no answer within the deadline",
    "reason.connect_failed": "could not connect",
    "reason.redirect": "answered with a redirect (not followed)",
    "reason.bad_answer": "unexpected answer (HTTP {status})",
    "reason.checks_failed": "failing checks: {checks}",
    "check.registry": "registry",
    "check.database": "database",
    "check.keys": "keys",
    "readiness.checked": "Readiness checked at {time} (the host asks members at most every 15 s)",
    "versions.title": "Registry versions and chain",
    "versions.explain": "Each version is signed by the alliance root key and names the hash of the one before; the host has verified each.",
    "versions.version": "Version",
    "versions.issued": "Issued",
    "versions.validity": "In effect — expires",
    "versions.state": "State",
    "versions.link": "Continues the one before",
    "versions.digest": "SHA-256",
    "version.current": " (current)",
    "version.in_effect": "in effect",
    "version.expired": "expired",
    "version.ahead": "not yet in effect",
    "version.superseded": "superseded",
    "version.unverified": "signature failed: {code}",
    "link.first": "first version",
    "link.yes": "yes",
    "link.no": "no: the chain is broken",
    "policy.title": "Policy and scenarios",
    "policy.age": "Longest use of an attestation",
    "policy.stale": "Status list staleness allowed",
    "policy.thresholds": "Alliance score thresholds",
    "policy.scenarios": "Scenarios",
    "policy.scenario": "Scenario",
    "policy.minimum": "Least alliance score",
    "policy.none": "no alliance-wide minimum (the service point decides)",
    "policy.days": "{n} days",
    "policy.hours": "{n} hours",
    "scenario.library_deposit_free": "Library card without deposit",
    "scenario.roadside_parking_pay_later": "Roadside parking, pay later",
    "scenario.car_park_pay_later": "Car park, pay later",
    "scenario.hospital_treat_first_pay_later": "Hospital: treatment first, pay later",
    "scenario.bike_deposit_free": "Public bikes without deposit",
    "scenario.missing_document_approval": "Approval with a document missing",
    "curves.title": "Each city's mapping curve",
    "curves.explain": "Across: the city's own score, lowest to highest; up: the alliance score it maps to. Dashed lines: the alliance score thresholds.",
    "curves.plot": "Mapping curves: {cities}. Each curve maps the city's local score to the alliance score (0–1000).",
    "curves.x": "Local score (share of the city's own range)",
    "curves.y": "Alliance score",
    "curves.tables": "Mapping tables",
    "curves.city": "City",
    "curves.scale": "Local score",
    "curves.version": "Version",
    "curves.valid": "Valid",
    "curves.signed": "Signed",
    "curves.signed_by": "alliance root key {kid}",
    "curves.unverified": "does not verify: {code}",
    "curves.points": "Points of {city}",
    "curves.local": "Local score",
    "curves.alliance": "Alliance score",
    "curves.none": "No mapping table yet.",
    "error.network": "Can't reach the alliance host: check the network, then press Refresh. What is shown stays.",
    "error.404": "This is not the alliance host (404): only the alliance host has a dashboard.",
    "error.429": "Too many requests (429): try again in a moment.",
    "error.503": "The alliance host is unavailable for now (503): try again later.",
    "error.other": "The alliance host answered with an error (HTTP {status}).",
    "error.readiness": "Could not get the members' readiness: {why}",
  },
};

const SVG = "http://www.w3.org/2000/svg";
// Colour and dash per line, so that the curves differ without colour too (WCAG 1.4.1).
const LINES = [
  ["#0b5cad", ""],
  ["#a4161a", "10 5"],
  ["#0f6b2f", "3 4"],
  ["#7a4b00", "12 4 3 4"],
  ["#6a1b9a", "6 3"],
  ["#00695c", "2 2"],
];
const PLOT = { width: 640, left: 52, right: 12, top: 14, bottom: 52 };

// i18n.js's el(), taking data attributes too: el("tr", {dataset: {city: "xiamen"}}).
function el(tag, props = {}, ...children) {
  const { dataset, ...rest } = props;
  const node = element(tag, rest, ...children);
  Object.assign(node.dataset, dataset ?? {});
  return node;
}

let overview = null;
let readiness = null;
let readinessError = null;
let asking = false;

class PageError extends Error {
  constructor(key, vars = {}, detail = "") {
    super(key);
    this.key = key;
    this.vars = vars;
    this.detail = detail;
  }
}

async function getJson(path) {
  let response;
  try {
    response = await fetch(path, { headers: { Accept: "application/json" }, cache: "no-store" });
  } catch {
    throw new PageError("error.network");
  }
  if (response.ok) return response.json();
  let detail = "";
  try {
    const body = await response.json();
    if (body?.error?.message) detail = `${body.error.message} [${body.error.code}]`;
  } catch {
    // no JSON body: the status says enough
  }
  const known = [404, 429, 503].includes(response.status);
  throw new PageError(known ? `error.${response.status}` : "error.other", { status: response.status }, detail);
}

function explain(error) {
  if (error instanceof PageError) {
    return error.detail ? `${t(error.key, error.vars)} ${error.detail}` : t(error.key, error.vars);
  }
  return t("error.other", { status: "?" });
}

function notice(message) {
  const box = document.getElementById("notice");
  box.textContent = message || "";
  box.classList.toggle("hidden", !message);
}

function when(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  return new Date(seconds * 1000).toISOString().slice(0, 16).replace("T", " ") + " UTC";
}

function day(seconds) {
  return seconds === null || seconds === undefined ? "—" : new Date(seconds * 1000).toISOString().slice(0, 10);
}

function badge(text, kind) {
  return el("span", { className: `badge ${kind}` }, text);
}

function short(hex) {
  return hex ? `${hex.slice(0, 12)}…` : "—";
}

// --- loading ------------------------------------------------------------------------------

async function load() {
  const button = document.getElementById("refresh");
  button.disabled = true;
  try {
    overview = await getJson("/v1/alliance/overview");
    notice("");
  } catch (error) {
    notice(explain(error));
  } finally {
    button.disabled = false;
    document.getElementById("loading").classList.add("hidden");
  }
  render();
  if (overview) await askReadiness();
}

async function askReadiness() {
  const button = document.getElementById("ask-ready");
  asking = true;
  button.disabled = true;
  renderMembers();
  try {
    readiness = await getJson("/v1/alliance/readiness");
    readinessError = null;
  } catch (error) {
    readinessError = error;
  } finally {
    asking = false;
    button.disabled = false;
  }
  renderMembers();
}

// --- rendering ----------------------------------------------------------------------------

function render() {
  if (!overview) return;
  for (const id of ["summary", "members", "versions", "policy", "curves"]) {
    document.getElementById(id).classList.remove("hidden");
  }
  renderSummary();
  renderMembers();
  renderVersions();
  renderPolicy();
  renderCurves();
}

function renderSummary() {
  document.getElementById("alliance-id").textContent = overview.alliance ?? "—";
  document.getElementById("root-kid").textContent = overview.root_kid ?? "—";
  document.getElementById("current-version").textContent = overview.current_version ?? "—";
  const chain = document.getElementById("chain");
  chain.textContent = t(overview.chain_intact ? "chain.intact" : "chain.broken");
  chain.className = `badge ${overview.chain_intact ? "ok" : "bad"}`;
}

function readinessOf(member) {
  if (asking && !readiness) return badge(t("ready.asking"), "muted");
  const found = readiness?.members.find((m) => m.id === member.id);
  if (!found) return badge(t("ready.unknown"), "warn");
  const kind = { ready: "ok", not_ready: "warn", unreachable: "bad" }[found.state];
  const cell = el("span", { className: "ready", dataset: { state: found.state } }, badge(t(`ready.${found.state}`), kind));
  let why = "";
  if (found.reason === "checks_failed") {
    why = t("reason.checks_failed", { checks: found.failing_checks.map((c) => t(`check.${c}`)).join(lang() === "zh" ? "、" : ", ") });
  } else if (found.reason) {
    why = t(`reason.${found.reason}`, { status: found.http_status });
  } else if (found.registry_version !== null) {
    why = t("ready.registry", { version: found.registry_version });
  }
  if (why) cell.append(el("span", { className: "reason" }, why));
  return cell;
}

function renderMembers() {
  if (!overview) return;
  const body = document.getElementById("members-body");
  body.replaceChildren();
  if (!overview.members.length) {
    body.append(el("tr", {}, el("td", { colSpan: 5 }, t("members.none"))));
  }
  for (const member of overview.members) {
    const valid = member.keys.filter((k) => k.valid_now).length;
    const certificates = member.certificates.length
      ? member.certificates.map((c) => el("div", {}, t(c.valid_now ? "certificate.valid" : "certificate.invalid", { from: day(c.not_before), until: day(c.not_after) })))
      : [t("certificates.none")];
    body.append(el("tr", { dataset: { member: member.id, city: member.city } },
      el("th", { scope: "row" }, el("div", {}, `${member.name} (${member.city})`), el("div", { className: "mono muted" }, member.id)),
      el("td", {}, badge(t(`status.${member.status}`), member.status === "active" ? "ok" : "bad")),
      el("td", { className: "readiness" }, readinessOf(member)),
      el("td", {}, t("keys.count", { valid, all: member.keys.length })),
      el("td", {}, ...certificates),
    ));
  }
  const note = document.getElementById("readiness-note");
  if (readinessError) note.textContent = t("error.readiness", { why: explain(readinessError) });
  else if (readiness) note.textContent = t("readiness.checked", { time: when(readiness.checked_at) });
  else note.textContent = "";
}

function versionState(version) {
  if (!version.verified) return badge(t("version.unverified", { code: version.problem?.code ?? "" }), "bad");
  if (version.expired) return badge(t("version.expired"), "bad");
  if (!version.in_effect) return badge(t("version.ahead"), "warn");
  const newestInEffect = Math.max(...overview.versions.filter((v) => v.verified && v.in_effect).map((v) => v.version));
  return version.version === newestInEffect ? badge(t("version.in_effect"), "ok") : badge(t("version.superseded"), "muted");
}

function renderVersions() {
  const body = document.getElementById("versions-body");
  body.replaceChildren();
  for (const version of [...overview.versions].reverse()) {
    const link = version.links === null ? badge(t("link.first"), "muted")
      : version.links ? badge(t("link.yes"), "ok") : badge(t("link.no"), "bad");
    const current = version.version === overview.current_version ? t("version.current") : "";
    body.append(el("tr", { dataset: { version: version.version, links: String(version.links) } },
      el("th", { scope: "row" }, `v${version.version}${current}`),
      el("td", {}, when(version.iat)),
      el("td", {}, `${when(version.valid_from)} — ${when(version.exp)}`),
      el("td", { className: "state" }, versionState(version)),
      el("td", { className: "link" }, link),
      el("td", { className: "mono", title: version.sha256 }, short(version.sha256)),
    ));
  }
}

function renderPolicy() {
  const policy = overview.policy;
  const days = policy?.max_attestation_age;
  const stale = policy?.status_stale_limit;
  document.getElementById("policy-age").textContent = days == null ? "—" : t("policy.days", { n: +(days / 86400).toFixed(1) });
  document.getElementById("policy-stale").textContent = stale == null ? "—" : t("policy.hours", { n: +(stale / 3600).toFixed(1) });
  document.getElementById("policy-thresholds").textContent = overview.scale?.thresholds.join(" · ") ?? "—";
  const body = document.getElementById("scenarios-body");
  body.replaceChildren();
  for (const scenario of policy?.scenarios ?? []) {
    const key = `scenario.${scenario.kind}`;
    const name = t(key) === key ? scenario.kind : t(key);
    body.append(el("tr", { dataset: { kind: scenario.kind } },
      el("th", { scope: "row" }, el("div", {}, name), el("div", { className: "mono muted" }, scenario.kind)),
      el("td", {}, scenario.min_alliance_score ?? t("policy.none")),
    ));
  }
}

function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  for (const child of children) node.append(child instanceof Node ? child : String(child));
  return node;
}

function cityName(city) {
  const member = overview.members.find((m) => m.city === city);
  return member ? member.name : city;
}

function renderCurves() {
  const tables = overview.tables;
  const drawn = tables.filter((table) => table.verified && table.points.length);
  const low = overview.scale?.min ?? 0;
  const high = overview.scale?.max ?? 1000;
  // As wide as the screen allows (at most 640): on a phone the labels stay readable.
  const room = document.getElementById("plot").clientWidth || PLOT.width;
  const width = Math.max(340, Math.min(PLOT.width, room));
  const height = Math.round(width * 0.62) + 20;
  const { left, right, top, bottom } = PLOT;
  const x = (position) => left + position * (width - left - right);
  const y = (score) => top + (1 - (score - low) / (high - low)) * (height - top - bottom);
  const names = drawn.map((table) => cityName(table.city)).join(lang() === "zh" ? "、" : ", ");
  const plot = svg("svg", {
    viewBox: `0 0 ${width} ${height}`, role: "img", class: "curve-plot",
    "aria-label": t("curves.plot", { cities: names || "—" }),
  });
  plot.append(svg("title", {}, t("curves.plot", { cities: names || "—" })));
  const axes = svg("g", { stroke: "#4a4f55", "stroke-width": 1, fill: "none" });
  axes.append(svg("line", { x1: x(0), y1: y(low), x2: x(1), y2: y(low) }));
  axes.append(svg("line", { x1: x(0), y1: y(low), x2: x(0), y2: y(high) }));
  plot.append(axes);
  const labels = svg("g", { fill: "#1b1b1b", "font-size": 12 });
  for (let score = low; score <= high; score += (high - low) / 5) {
    labels.append(svg("text", { x: x(0) - 6, y: y(score) + 4, "text-anchor": "end" }, Math.round(score)));
    axes.append(svg("line", { x1: x(0) - 4, y1: y(score), x2: x(0), y2: y(score) }));
  }
  for (const share of [0, 0.25, 0.5, 0.75, 1]) {
    labels.append(svg("text", { x: x(share), y: y(low) + 18, "text-anchor": "middle" }, `${share * 100}%`));
    axes.append(svg("line", { x1: x(share), y1: y(low), x2: x(share), y2: y(low) + 4 }));
  }
  labels.append(svg("text", { x: (x(0) + x(1)) / 2, y: height - 8, "text-anchor": "middle" }, t("curves.x")));
  labels.append(svg("text", { x: 14, y: (y(low) + y(high)) / 2, "text-anchor": "middle",
    transform: `rotate(-90 14 ${(y(low) + y(high)) / 2})` }, t("curves.y")));
  plot.append(labels);
  const guides = svg("g", { class: "thresholds", stroke: "#7a4b00", "stroke-width": 1, "stroke-dasharray": "4 4" });
  for (const threshold of overview.scale?.thresholds ?? []) {
    guides.append(svg("line", { x1: x(0), y1: y(threshold), x2: x(1), y2: y(threshold), "data-threshold": threshold }));
    labels.append(svg("text", { x: x(1) - 2, y: y(threshold) - 3, "text-anchor": "end", fill: "#7a4b00", "font-size": 11 }, threshold));
  }
  plot.insertBefore(guides, labels);
  const legend = document.getElementById("legend");
  legend.replaceChildren();
  drawn.forEach((table, index) => {
    const [colour, dash] = LINES[index % LINES.length];
    const d = table.points.map((p, i) => `${i ? "L" : "M"}${x(p.position).toFixed(1)} ${y(p.alliance).toFixed(1)}`).join(" ");
    plot.append(svg("path", { d, class: "curve", "data-city": table.city, fill: "none", stroke: colour,
      "stroke-width": 2.5, "stroke-dasharray": dash || "none", "stroke-linejoin": "round" }));
    const swatch = svg("svg", { viewBox: "0 0 32 8", class: "swatch", "aria-hidden": "true" },
      svg("line", { x1: 0, y1: 4, x2: 32, y2: 4, stroke: colour, "stroke-width": 3, "stroke-dasharray": dash || "none" }));
    const scale = table.local_scale;
    const range = scale.labels ? `${scale.labels[0]}…${scale.labels[scale.labels.length - 1]}` : `${scale.min}–${scale.max}`;
    legend.append(el("li", {}, swatch, `${cityName(table.city)} · ${scale.name} ${range}`));
  });
  document.getElementById("plot").replaceChildren(plot);
  renderTables(tables);
}

function renderTables(tables) {
  const body = document.getElementById("tables-body");
  body.replaceChildren();
  if (!tables.length) body.append(el("tr", {}, el("td", { colSpan: 5 }, t("curves.none"))));
  const points = document.getElementById("points");
  points.replaceChildren();
  for (const table of tables) {
    const scale = table.local_scale;
    const signed = table.verified ? badge(t("curves.signed_by", { kid: short(table.signed_by) }), "ok")
      : badge(t("curves.unverified", { code: table.problem?.code ?? "" }), "bad");
    body.append(el("tr", { dataset: { city: table.city } },
      el("th", { scope: "row" }, cityName(table.city)),
      el("td", {}, scale ? scale.name : "—"),
      el("td", {}, `v${table.version}`),
      el("td", {}, `${day(table.valid_from)} — ${day(table.valid_to)}`),
      el("td", {}, signed),
    ));
    if (!table.points.length) continue;
    const rows = table.points.map((p) => el("tr", {}, el("td", {}, p.local), el("td", {}, p.alliance)));
    points.append(el("details", {},
      el("summary", {}, t("curves.points", { city: cityName(table.city) })),
      el("div", { className: "table-wrap" }, el("table", {},
        el("thead", {}, el("tr", {}, el("th", { scope: "col" }, t("curves.local")), el("th", { scope: "col" }, t("curves.alliance")))),
        el("tbody", {}, ...rows)))));
  }
}

init(MESSAGES, () => {
  render();
});
document.getElementById("refresh").addEventListener("click", () => load());
document.getElementById("ask-ready").addEventListener("click", () => askReadiness());
load();
