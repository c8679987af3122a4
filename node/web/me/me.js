// The resident's page (issue 16), served by her home node over its JSON API: log in
// through the city's identity provider (the token kept in this tab's sessionStorage
// only), her score with its breakdown and the records behind it, why each counts (PIPL
// art. 24), her two consents, objections, a credential offer for a wallet, and the
// attestations issued to her. Everything the node says is put in with textContent (el),
// never as HTML. Times are read from Date.now() when used.
import { init, t, el, lang, setLanguage } from "/common/i18n.js";
import { qrImage } from "/common/qr.js";

export const TOKEN = "ccx-me-token";
export const LOGIN = "ccx-me-login";

const MESSAGES = {
  zh: {
    title: "我的信用",
    heading: "我的信用",
    logout: "退出",
    loginTitle: "登录",
    loginIntro: "通过本市的统一身份认证登录，查看您的信用分、背后的记录，管理授权与证明。",
    login: "登录",
    loading: "正在加载……",
    loggedOut: "您已退出。",
    sessionEnded: "登录已失效，请重新登录。",
    network: "网络不通，无法连接节点。请检查网络后重试；您填写的内容仍在。",
    unavailable: "服务暂时不可用（{code}）：{message} 请稍后再试。",
    rateLimited: "请求过多，请稍后再试。",
    forbidden: "没有权限：{message}",
    needsConsents: "这需要您先在“我的授权”中授权：{missing}。",
    band_poor: "较差",
    band_fair: "一般",
    band_good: "良好",
    band_very_good: "优良",
    band_excellent: "优秀",
    notFound: "找不到：{message}",
    conflict: "无法执行：{message}",
    invalid: "填写的内容不符合要求：{message}",
    failed: "出错了（HTTP {status}）：{message}",
    retry: "重试",
    scoreTitle: "我的信用分",
    scoreNeedsConsent: "查看信用分需要您先授权“向本人展示信用分”（见下方授权）。",
    scoreOn: "分值范围 {min}–{max}",
    allianceBand: "联盟统一等级：{band}（联盟分 {score}）",
    noAlliance: "暂时无法换算为联盟等级（本市映射表未生效）。",
    computedAt: "计算于 {date}，模型版本 {version}",
    objectedCounted: "有记录正在异议中：异议处理完之前，这些记录仍计入分数。",
    dimensionPoints: "{points} 分（范围 {min} 至 {max}）",
    reasonsTitle: "使您的分数降低最多的因素",
    reasonsIntro: "本市信用分由评分卡模型计算（依历史数据拟合）。以下各项低于其可得的最高分，按差距从大到小排列：",
    reasonBelow: "低于该项最高 {points} 分",
    noRecords: "该维度没有计入的记录。",
    recordMeta: "{kind} · {department}/{record} · 发生于 {date}",
    countsUntil: "计入至 {date}",
    objectedTag: "异议中",
    noExplanation: "（模型未提供说明）",
    object: "提出异议",
    objectReason: "异议理由",
    objectSend: "提交异议",
    cancel: "取消",
    objectionFiled: "异议已提交，请在下方“我的异议”中跟进。",
    consentsTitle: "我的授权",
    consent_open_score: "向本人展示信用分（二次授权）",
    consent_share_alliance: "向联盟城市分享信用等级",
    consent_share_domestic_service: "向联盟城市分享家政服务证明",
    purpose_share_domestic_service: "允许把您的家政服务证明（背景审查是否通过、培训、评价是否达到几星、近 12 个月有无成立投诉，不含任何记录）分享给您指定的联盟成员城市，用于您说明的目的。与信用等级分开：撤回只作废家政服务证明。",
    offerCredential: "证明类型",
    credential_ccx_credit_standing: "信用等级证明",
    credential_ccx_domestic_service: "家政服务证明",
    domesticLine: "家政服务证明 #{id}",
    purpose_open_score: "允许本节点把您的信用分和背后的记录展示给您本人。不授权时，分数不向任何人打开。领取信用证明也需要此授权。",
    purpose_share_alliance: "允许把您的信用等级（只是等级和联盟分，不含任何记录）做成证明，分享给您指定的联盟成员城市，用于您说明的目的。撤回后，已发出的证明全部作废。",
    granted: "已授权（{date}）",
    notGranted: "未授权",
    withdrawnOn: "上次撤回于 {date}",
    recipientsAre: "接收方：{recipients}",
    everyMember: "联盟全体成员",
    purposeIs: "目的：{purpose}",
    grant: "授权",
    withdraw: "撤回授权",
    withdrawConfirm: "撤回此授权会立即作废您已领取的全部信用证明。确定撤回吗？",
    withdrawYes: "确定撤回",
    withdrawn: "已撤回授权，作废了 {count} 份证明。",
    grantedNow: "已授权。",
    recipientsLegend: "分享给谁",
    toEveryMember: "联盟全体成员城市",
    toNamed: "指定的成员城市（每行一个节点地址）",
    namedLabel: "成员城市的节点地址",
    purposeLabel: "分享目的（例如：在福州免押金借书）",
    offerTitle: "领取信用证明到钱包",
    offerIntro: "生成一次性的领取邀请（5 分钟内有效）：用手机钱包扫描二维码，或在本设备上打开网页钱包。需要两项授权。",
    crossDevice: "钱包在另一台设备上（领取时需要输入一次性验证码）",
    makeOffer: "生成领取邀请",
    offerQr: "领取邀请二维码：请用手机钱包扫描",
    txCode: "验证码（在钱包中输入）：",
    openWebWallet: "在本设备的网页钱包中打开",
    offerLink: "邀请链接：",
    offerExpires: "有效期至 {time}",
    attestationsTitle: "已发出的信用证明",
    noAttestations: "还没有发出过证明。",
    attestationLine: "证明 #{id}：等级 {band}（联盟分 {score}）",
    issuedExpires: "签发于 {issued}，有效期至 {expires}",
    holderKey: "钱包密钥：{kid}",
    status_valid: "有效",
    status_suspended: "暂停",
    status_revoked: "已作废",
    expired: "已过期",
    revoke: "作废此证明",
    revokeConfirm: "作废后任何服务点都不会再接受这份证明。确定作废吗？",
    revokeYes: "确定作废",
    revoked: "证明 #{id} 已作废。",
    suspend: "暂停",
    resume: "恢复",
    suspended: "证明 #{id} 已暂停：恢复之前，服务点都不会接受它（其他城市在几分钟内生效）。",
    resumed: "证明 #{id} 已恢复有效（其他城市在几分钟内生效）。",
    revokeKey: "作废此钱包密钥的全部证明",
    revokeKeyConfirm: "丢了手机？这会作废绑定在这个钱包密钥上的每一份证明，且不能恢复。确定吗？",
    revokeKeyYes: "确定全部作废",
    revokedKey: "此钱包密钥的 {count} 份证明已作废。",
    objectionsTitle: "我的异议",
    noObjections: "没有提出过异议。",
    objectionLine: "{record}：{reason}",
    objectionFiledOn: "提交于 {date}",
    objection_open: "处理中",
    objection_upheld: "已支持（记录已删除）",
    objection_rejected: "未支持",
    resolution: "处理意见：{text}",
  },
  en: {
    title: "My credit",
    heading: "My credit",
    logout: "Log out",
    loginTitle: "Log in",
    loginIntro: "Log in through the city's identity provider to see your score and the records behind it, and to manage your consents and attestations.",
    login: "Log in",
    loading: "Loading…",
    loggedOut: "You have logged out.",
    sessionEnded: "Your session has ended: please log in again.",
    network: "The node can't be reached. Check the network and try again; what you typed is kept.",
    unavailable: "The service is unavailable for now ({code}): {message} Try again later.",
    rateLimited: "Too many requests: try again in a moment.",
    forbidden: "Not allowed: {message}",
    needsConsents: "This needs your consent first, under \"My consents\": {missing}.",
    band_poor: "poor",
    band_fair: "fair",
    band_good: "good",
    band_very_good: "very good",
    band_excellent: "excellent",
    notFound: "Not found: {message}",
    conflict: "Not possible: {message}",
    invalid: "What was entered does not fit: {message}",
    failed: "Something went wrong (HTTP {status}): {message}",
    retry: "Try again",
    scoreTitle: "My score",
    scoreNeedsConsent: "To see your score, first give the consent \"Show my score to me\" (see Consents below).",
    scoreOn: "on a scale of {min}–{max}",
    allianceBand: "Alliance band: {band} (alliance score {score})",
    noAlliance: "No alliance band for now (the city's mapping table is not in force).",
    computedAt: "Computed on {date}, model version {version}",
    objectedCounted: "Some records are under objection: they still count until the objection is decided.",
    dimensionPoints: "{points} points (between {min} and {max})",
    reasonsTitle: "What lowered your score most",
    reasonsIntro: "The city scores with a scorecard (fitted from past outcomes). These parts lie below the most they can give, the furthest first:",
    reasonBelow: "{points} points below the most this part can give",
    noRecords: "No record counts in this dimension.",
    recordMeta: "{kind} · {department}/{record} · on {date}",
    countsUntil: "counts until {date}",
    objectedTag: "objected",
    noExplanation: "(the model gives no explanation)",
    object: "Object",
    objectReason: "Why you object",
    objectSend: "Send the objection",
    cancel: "Cancel",
    objectionFiled: "Your objection was sent: follow it under \"My objections\" below.",
    consentsTitle: "My consents",
    consent_open_score: "Show my score to me (second authorisation)",
    consent_share_alliance: "Share my standing with alliance cities",
    consent_share_domestic_service: "Share my domestic-service credential with alliance cities",
    purpose_share_domestic_service: "Lets your domestic-service credential (whether your background check passed, your training, whether your ratings reach so many stars, whether a complaint was upheld in 12 months; never a record) be shared with the alliance's member cities you name, for the purpose you state. Separate from your credit standing: withdrawing it revokes only the domestic-service credentials.",
    offerCredential: "Credential",
    credential_ccx_credit_standing: "Credit standing",
    credential_ccx_domestic_service: "Domestic-service credential",
    domesticLine: "Domestic-service credential #{id}",
    purpose_open_score: "Lets this node show your score and the records behind it to you. Without it, your score is opened to no one. Taking an attestation needs it too.",
    purpose_share_alliance: "Lets your credit standing (the band and the alliance score only, never a record) be put in an attestation and shared with the alliance's member cities you name, for the purpose you state. Withdrawing it revokes every attestation issued.",
    granted: "Granted ({date})",
    notGranted: "Not granted",
    withdrawnOn: "Last withdrawn on {date}",
    recipientsAre: "Recipients: {recipients}",
    everyMember: "every member of the alliance",
    purposeIs: "Purpose: {purpose}",
    grant: "Grant",
    withdraw: "Withdraw",
    withdrawConfirm: "Withdrawing this consent revokes every attestation you hold, at once. Withdraw it?",
    withdrawYes: "Yes, withdraw",
    withdrawn: "Consent withdrawn; {count} attestation(s) revoked.",
    grantedNow: "Consent granted.",
    recipientsLegend: "Share with",
    toEveryMember: "every member city of the alliance",
    toNamed: "the member cities I name (one node address a line)",
    namedLabel: "Node addresses of the member cities",
    purposeLabel: "Purpose (for example: borrowing books without a deposit in Fuzhou)",
    offerTitle: "Take an attestation into a wallet",
    offerIntro: "Make a one-time offer (valid for 5 minutes): scan the QR code with a phone wallet, or open the web wallet on this device. Both consents are needed.",
    crossDevice: "The wallet is on another device (it will ask for a one-time code)",
    makeOffer: "Make an offer",
    offerQr: "The offer as a QR code: scan it with a phone wallet",
    txCode: "Code to type into the wallet:",
    openWebWallet: "Open in the web wallet on this device",
    offerLink: "Offer link:",
    offerExpires: "valid until {time}",
    attestationsTitle: "Attestations issued",
    noAttestations: "No attestation has been issued yet.",
    attestationLine: "Attestation #{id}: band {band} (alliance score {score})",
    issuedExpires: "issued {issued}, valid until {expires}",
    holderKey: "wallet key: {kid}",
    status_valid: "valid",
    status_suspended: "suspended",
    status_revoked: "revoked",
    expired: "expired",
    revoke: "Revoke",
    revokeConfirm: "Once revoked, no service point accepts this attestation. Revoke it?",
    revokeYes: "Yes, revoke",
    revoked: "Attestation #{id} is revoked.",
    suspend: "Suspend",
    resume: "Resume",
    suspended: "Attestation #{id} is suspended: no service point accepts it until you resume it (other cities within minutes).",
    resumed: "Attestation #{id} is valid again (other cities within minutes).",
    revokeKey: "Revoke all of this wallet key",
    revokeKeyConfirm: "Lost the phone? This revokes every attestation bound to this wallet key, for good. Revoke them all?",
    revokeKeyYes: "Yes, revoke them all",
    revokedKey: "{count} attestation(s) of this wallet key revoked.",
    objectionsTitle: "My objections",
    noObjections: "You have raised no objection.",
    objectionLine: "{record}: {reason}",
    objectionFiledOn: "raised on {date}",
    objection_open: "open",
    objection_upheld: "upheld (the record was removed)",
    objection_rejected: "rejected",
    resolution: "Decision: {text}",
  },
};

const $ = (id) => document.getElementById(id);
const view = { score: null, scoreError: null, consents: [], objections: [], attestations: [], offer: null, configurations: [] };
const open = { objecting: null, withdrawing: null, revoking: null, revokingKey: null, granting: false };

// --- talking to the node -----------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

async function api(method, path, body) {
  const token = sessionStorage.getItem(TOKEN);
  if (!token) throw new ApiError(401, "unauthorized", "");
  const headers = { Authorization: `Bearer ${token}`, Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, "network", "");
  }
  let answer = null;
  try {
    answer = await response.json();
  } catch {
    answer = null;
  }
  if (!response.ok) {
    const error = answer && typeof answer.error === "object" && answer.error ? answer.error : {};
    let message = typeof error.message === "string" ? error.message : "";
    if (Array.isArray(error.details)) {
      const said = error.details.map((d) => [d.field, d.problem].filter(Boolean).join(": ")).join("; ");
      if (said) message = `${message} (${said})`;
    }
    throw new ApiError(response.status, typeof error.code === "string" ? error.code : "", message, error.details);
  }
  return answer;
}

// What a failure means to her, in her language; a 401 ends the session.
function explain(error) {
  const vars = { status: error.status, code: error.code, message: error.message };
  if (error.status === 0) return t("network");
  if (error.status === 401) return t("sessionEnded");
  if (error.status === 403 && error.code === "consent_required") {
    const missing = Array.isArray(error.details?.missing) ? error.details.missing : ["open_score", "share_alliance"];
    return t("needsConsents", { missing: missing.map((kind) => t(`consent_${kind}`)).join(lang() === "zh" ? "、" : ", ") });
  }
  if (error.status === 403) return t("forbidden", vars);
  if (error.status === 404) return t("notFound", vars);
  if (error.status === 409) return t("conflict", vars);
  if (error.status === 422 || error.status === 400) return t("invalid", vars);
  if (error.status === 429) return t("rateLimited");
  if (error.status === 503) return t("unavailable", vars);
  return t("failed", vars);
}

let lastError = null;
let lastNotice = null;

function showError(error, retry) {
  lastError = { error, retry };
  lastNotice = null;
  if (error.status === 401) {
    sessionStorage.removeItem(TOKEN);
    showLoggedOut();
  }
  renderAlert();
}

function showNotice(key, vars) {
  lastNotice = { key, vars };
  lastError = null;
  renderAlert();
}

function clearAlert() {
  lastError = lastNotice = null;
  renderAlert();
}

function renderAlert() {
  const box = $("alert");
  box.replaceChildren();
  if (lastError) {
    box.className = "notice bad";
    box.append(el("span", {}, explain(lastError.error)));
    if (lastError.error.status === 401) {
      box.append(" ", el("button", { type: "button", className: "secondary", onclick: startLogin }, t("login")));
    } else if (lastError.retry) {
      box.append(" ", el("button", { type: "button", className: "secondary", onclick: lastError.retry }, t("retry")));
    }
  } else if (lastNotice) {
    box.className = "notice ok";
    box.append(t(lastNotice.key, lastNotice.vars));
  } else {
    box.className = "notice hidden";
  }
}

// Runs an action; its failure is shown and nothing she typed is thrown away.
async function attempt(action, retry) {
  try {
    await action();
    return true;
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    showError(error, retry);
    return false;
  }
}

// --- logging in ----------------------------------------------------------------------

function randomValue() {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function startLogin() {
  setLanguage(lang()); // remembered across the identity provider's pages
  const login = { state: randomValue(), nonce: randomValue() };
  sessionStorage.setItem(LOGIN, JSON.stringify(login));
  location.assign(`/me/login?${new URLSearchParams(login)}`);
}

function showLoggedOut() {
  $("login-section").classList.remove("hidden");
  $("app").classList.add("hidden");
  $("logout").classList.add("hidden");
  $("loading").classList.add("hidden");
}

function logout() {
  sessionStorage.removeItem(TOKEN);
  Object.assign(view, { score: null, scoreError: null, consents: [], objections: [], attestations: [], offer: null });
  showLoggedOut();
  showNotice("loggedOut");
}

// --- loading -------------------------------------------------------------------------

async function loadScore() {
  try {
    view.score = await api("GET", "/v1/me/score");
    view.scoreError = null;
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    if (error.status === 403 && error.code === "consent_required") {
      view.score = null;
      view.scoreError = "consent";
      return;
    }
    throw error;
  }
}

// the credentials this node issues (its OpenID4VCI metadata): the domestic-service
// credential's consent and offer are shown only where it issues one (issue 18)
async function loadConfigurations() {
  try {
    const response = await fetch("/.well-known/openid-credential-issuer", { headers: { Accept: "application/json" } });
    const metadata = response.ok ? await response.json() : {};
    view.configurations = Object.keys(metadata.credential_configurations_supported ?? {});
  } catch {
    view.configurations = [];
  }
}

async function loadAll() {
  $("loading").classList.remove("hidden");
  const loaded = await attempt(async () => {
    const [consents, objections, attestations] = await Promise.all([
      api("GET", "/v1/me/consents"),
      api("GET", "/v1/me/objections"),
      api("GET", "/v1/me/attestations"),
      loadScore(),
      loadConfigurations(),
    ]);
    view.consents = consents.consents;
    view.objections = objections.objections;
    view.attestations = attestations.attestations;
  }, loadAll);
  $("loading").classList.add("hidden");
  if (!loaded) return;
  if (lastError) clearAlert();
  $("login-section").classList.add("hidden");
  $("app").classList.remove("hidden");
  $("logout").classList.remove("hidden");
  render();
}

// --- showing -------------------------------------------------------------------------

const ZONE = "Asia/Shanghai"; // the city's dates, whatever the browser's zone

function date(seconds) {
  return new Date(seconds * 1000).toLocaleDateString(lang() === "zh" ? "zh-CN" : "en-GB", {
    timeZone: ZONE, year: "numeric", month: "short", day: "numeric",
  });
}

function time(seconds) {
  return new Date(seconds * 1000).toLocaleTimeString(lang() === "zh" ? "zh-CN" : "en-GB", {
    timeZone: ZONE, hour: "2-digit", minute: "2-digit",
  });
}

function number(value) {
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}

function signed(value) {
  return value > 0 ? `+${number(value)}` : number(value);
}

function render() {
  renderScore();
  renderConsents();
  renderOfferChoice();
  renderOffer();
  renderAttestations();
  renderObjections();
  renderAlert();
}

function renderScore() {
  const box = $("score");
  box.replaceChildren();
  if (view.scoreError === "consent") {
    box.append(el("p", { className: "notice warn" }, t("scoreNeedsConsent")));
    return;
  }
  const score = view.score;
  if (!score) return;
  const head = el("div", { className: "card" },
    el("div", { className: "score-head" },
      el("span", { className: "big", id: "score-value" }, number(score.score)),
      el("span", { className: "muted" }, t("scoreOn", { min: score.scale.min, max: score.scale.max }))));
  head.append(score.alliance
    ? el("p", {}, el("span", { className: "band", id: "alliance-band" },
      t("allianceBand", { band: bandName(score.alliance.band), score: score.alliance.score })))
    : el("p", { className: "muted" }, t("noAlliance")));
  head.append(el("p", { className: "muted" },
    t("computedAt", { date: date(score.computed_at), version: score.model_version })));
  if (score.objected_records_counted) head.append(el("p", { className: "notice warn" }, t("objectedCounted")));
  box.append(head);
  if (score.reasons && score.reasons.length) box.append(renderReasons(score.reasons));
  const dimensions = el("div", { className: "dimensions" });
  for (const dimension of score.dimensions) dimensions.append(renderDimension(dimension));
  box.append(dimensions);
}

// A scorecard's reason codes (PIPL art. 24): what lowered her score most, the most first.
function renderReasons(reasons) {
  const list = el("ol", { className: "reasons" });
  for (const reason of reasons) {
    const text = (lang() === "zh" ? reason.text_zh : reason.text_en)
      || (lang() === "zh" ? reason.label : reason.label_en);
    list.append(el("li", { id: `reason-${reason.code}` },
      el("span", { className: "reason-code" }, reason.code), " ", el("span", {}, text), " ",
      el("span", { className: "muted" }, t("reasonBelow", { points: number(reason.points_below_max) }))));
  }
  return el("section", { className: "card", id: "reasons" },
    el("h3", {}, t("reasonsTitle")), el("p", { className: "muted" }, t("reasonsIntro")), list);
}

// A band's name in her language (an alliance may name bands this page does not know).
function bandName(band) {
  const key = `band_${band}`;
  const name = t(key);
  return name === key ? band : name;
}

function renderDimension(dimension) {
  const label = lang() === "zh" ? dimension.label : dimension.label_en;
  const card = el("section", { className: "card dimension", id: `dimension-${dimension.name}` },
    el("h3", {}, el("span", {}, label), el("span", { className: pointsClass(dimension.points) }, signed(dimension.points))),
    el("p", { className: "muted" }, t("dimensionPoints", {
      points: signed(dimension.points), min: dimension.cap.min, max: dimension.cap.max,
    })));
  if (!dimension.records.length) {
    card.append(el("p", { className: "muted" }, t("noRecords")));
    return card;
  }
  const list = el("ul", { className: "records" });
  for (const record of dimension.records) list.append(renderRecord(record));
  card.append(list);
  return card;
}

function pointsClass(points) {
  return `points ${points > 0 ? "plus" : points < 0 ? "minus" : ""}`;
}

function renderRecord(record) {
  const key = `${record.department}/${record.record_id}`;
  const why = (lang() === "zh" ? record.explain_zh : record.explain_en) || t("noExplanation");
  const item = el("li", { className: "record" },
    el("div", { className: "record-line" },
      el("strong", {}, lang() === "zh" ? record.label_zh : record.label_en, record.objected ? el("span", { className: "tag warn" }, t("objectedTag")) : null),
      el("span", { className: pointsClass(record.points) }, signed(record.points))),
    el("p", { className: "why" }, why),
    el("p", { className: "muted" },
      t("recordMeta", { kind: record.kind, department: record.department, record: record.record_id, date: date(record.occurred_at) }),
      record.counts_until ? ` · ${t("countsUntil", { date: date(record.counts_until) })}` : ""));
  item.dataset.record = key;
  if (open.objecting === key) {
    item.append(objectionForm(record, key));
  } else if (!record.objected) {
    item.append(el("button", {
      type: "button", className: "secondary object",
      onclick: () => { open.objecting = key; renderScore(); item.ownerDocument.getElementById(`reason-${cssId(key)}`)?.focus(); },
    }, t("object")));
  }
  return item;
}

function cssId(text) {
  return text.replace(/[^A-Za-z0-9_-]/g, "_");
}

const drafts = new Map(); // what she typed, kept across re-renders and failures

function objectionForm(record, key) {
  const id = `reason-${cssId(key)}`;
  const reason = el("textarea", { id, name: "reason", required: true, maxLength: 1000, value: drafts.get(key) ?? "" });
  reason.addEventListener("input", () => drafts.set(key, reason.value));
  const form = el("form", { className: "objection-form" },
    el("label", { htmlFor: id }, t("objectReason")), reason,
    el("button", { type: "submit" }, t("objectSend")),
    el("button", { type: "button", className: "secondary", onclick: () => { open.objecting = null; renderScore(); } }, t("cancel")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = reason.value.trim();
    if (!text) return reason.focus();
    const done = await attempt(async () => {
      await api("POST", "/v1/me/objections", { record: key, reason: text });
      drafts.delete(key);
      open.objecting = null;
      await Promise.all([loadScore(), api("GET", "/v1/me/objections").then((a) => { view.objections = a.objections; })]);
    });
    if (done) {
      render();
      showNotice("objectionFiled");
    }
  });
  return form;
}

function renderConsents() {
  const box = $("consents");
  box.replaceChildren();
  const kinds = ["open_score", "share_alliance"];
  if (view.configurations.includes(DOMESTIC)) kinds.push("share_domestic_service");
  for (const kind of kinds) {
    const history = view.consents.filter((c) => c.kind === kind);
    const active = history.find((c) => c.active);
    const last = history.at(-1);
    const card = el("section", { className: "card consent", id: `consent-${kind}` },
      el("h3", {}, t(`consent_${kind}`)),
      el("p", {}, t(`purpose_${kind}`)),
      el("p", { className: `state ${active ? "ok" : "warn"} notice` },
        active ? t("granted", { date: date(active.granted_at) }) : t("notGranted")));
    if (active && kind !== "open_score") {
      const names = active.recipients.map((r) => (r === "alliance" ? t("everyMember") : r)).join(", ");
      card.append(el("p", {}, t("recipientsAre", { recipients: names })));
      if (active.purpose) card.append(el("p", {}, t("purposeIs", { purpose: active.purpose })));
    }
    if (!active && last && last.withdrawn_at) card.append(el("p", { className: "muted" }, t("withdrawnOn", { date: date(last.withdrawn_at) })));
    if (active) card.append(withdrawControls(kind));
    else card.append(kind !== "open_score" ? shareForm(kind) : el("button", {
      type: "button", className: "grant", onclick: () => grant({ kind: "open_score" }),
    }, t("grant")));
    box.append(card);
  }
}

function withdrawControls(kind) {
  if (open.withdrawing !== kind) {
    return el("button", { type: "button", className: "danger withdraw", onclick: () => { open.withdrawing = kind; renderConsents(); } }, t("withdraw"));
  }
  const box = el("div", { className: "notice confirm", role: "group" },
    el("p", {}, t("withdrawConfirm")),
    el("button", { type: "button", className: "danger confirm-withdraw", onclick: () => withdraw(kind) }, t("withdrawYes")),
    el("button", { type: "button", className: "secondary", onclick: () => { open.withdrawing = null; renderConsents(); } }, t("cancel")));
  queueMicrotask(() => box.querySelector("button")?.focus());
  return box;
}

// her share forms, one per credential, kept on failure; share_alliance's ids are "share-*"
const shares = {};
const DOMESTIC = "ccx_domestic_service";

function shareForm(kind) {
  const share = (shares[kind] ??= { to: "alliance", named: "", purpose: "" });
  const id = kind === "share_alliance" ? "share" : "share-domestic";
  const every = el("input", { type: "radio", name: `${id}-to`, id: `${id}-every`, value: "alliance", checked: share.to === "alliance" });
  const named = el("input", { type: "radio", name: `${id}-to`, id: `${id}-named`, value: "named", checked: share.to === "named" });
  const members = el("textarea", { id: `${id}-members`, value: share.named, disabled: share.to !== "named", spellcheck: false });
  const purpose = el("input", { type: "text", id: `${id}-purpose`, value: share.purpose, required: true, maxLength: 500 });
  for (const radio of [every, named]) {
    radio.addEventListener("change", () => { share.to = radio.value; members.disabled = share.to !== "named"; });
  }
  members.addEventListener("input", () => { share.named = members.value; });
  purpose.addEventListener("input", () => { share.purpose = purpose.value; });
  const form = el("form", { id: `${id}-form` },
    el("fieldset", {}, el("legend", {}, t("recipientsLegend")),
      el("label", { className: "check", htmlFor: `${id}-every` }, every, el("span", {}, t("toEveryMember"))),
      el("label", { className: "check", htmlFor: `${id}-named` }, named, el("span", {}, t("toNamed"))),
      el("label", { htmlFor: `${id}-members` }, t("namedLabel")), members),
    el("label", { htmlFor: `${id}-purpose` }, t("purposeLabel")), purpose,
    el("button", { type: "submit", className: "grant" }, t("grant")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!share.purpose.trim()) return purpose.focus();
    const recipients = share.to === "alliance"
      ? ["alliance"]
      : share.named.split(/[\s,]+/).map((r) => r.trim()).filter(Boolean);
    grant({ kind, recipients, purpose: share.purpose.trim() });
  });
  return form;
}

async function grant(body) {
  const done = await attempt(async () => {
    await api("POST", "/v1/me/consents", body);
    await reloadConsents();
  });
  if (done) {
    if (body.kind !== "open_score") delete shares[body.kind];
    render();
    showNotice("grantedNow");
  }
}

async function withdraw(kind) {
  let count = 0;
  const done = await attempt(async () => {
    const answer = await api("DELETE", `/v1/me/consents/${kind}`);
    count = answer.revoked_attestations;
    open.withdrawing = null;
    await reloadConsents();
  });
  if (done) {
    render();
    showNotice("withdrawn", { count });
  }
}

async function reloadConsents() {
  view.consents = (await api("GET", "/v1/me/consents")).consents;
  const [attestations] = await Promise.all([api("GET", "/v1/me/attestations"), loadScore()]);
  view.attestations = attestations.attestations;
}

// --- the credential offer --------------------------------------------------------------

async function makeOffer() {
  const button = $("make-offer");
  button.disabled = true;
  const done = await attempt(async () => {
    const body = { cross_device: $("cross-device").checked };
    if (!$("offer-credential-row").classList.contains("hidden")) body.credential_configuration_id = $("offer-credential").value;
    view.offer = await api("POST", "/v1/me/credential-offers", body);
  });
  button.disabled = false;
  if (done) {
    clearAlert();
    renderOffer();
  }
}

function renderOfferChoice() {
  const choices = view.configurations.filter((id) => id.startsWith("ccx_"));
  const select = $("offer-credential");
  const chosen = select.value;
  select.replaceChildren(...choices.map((id) => el("option", { value: id }, t(`credential_${id}`))));
  if (choices.includes(chosen)) select.value = chosen;
  $("offer-credential-row").classList.toggle("hidden", choices.length < 2);
}

function renderOffer() {
  const box = $("offer");
  box.replaceChildren();
  const offer = view.offer;
  if (!offer) return;
  const wallet = `/wallet/?offer=${encodeURIComponent(offer.offer)}`;
  box.append(
    qrImage(offer.offer, t("offerQr")),
    el("p", { className: "muted" }, t("offerExpires", { time: time(offer.expires_at) })));
  if (offer.tx_code) {
    box.append(el("p", {}, t("txCode"), " ", el("span", { className: "tx-code", id: "tx-code" }, offer.tx_code)));
  }
  box.append(
    el("p", {}, el("a", { className: "button", id: "web-wallet-link", href: wallet }, t("openWebWallet"))),
    el("p", {}, t("offerLink"), " ", el("a", { className: "offer-link", id: "offer-link", href: offer.offer }, offer.offer)));
}

// --- her attestations --------------------------------------------------------------------

function renderAttestations() {
  const box = $("attestations");
  box.replaceChildren();
  if (!view.attestations.length) {
    box.append(el("p", { className: "muted" }, t("noAttestations")));
    return;
  }
  const list = el("ul", { className: "records" });
  const now = Date.now() / 1000;
  for (const item of view.attestations) {
    const expired = item.expires_at <= now;
    const stateClass = item.status === "valid" && !expired ? "ok" : item.status === "revoked" ? "bad" : "warn";
    const row = el("li", { className: "attestation", id: `attestation-${item.id}` },
      el("div", { className: "record-line" },
        el("strong", {}, item.credential === "domestic_service"
          ? t("domesticLine", { id: item.id })
          : t("attestationLine", { id: item.id, band: bandName(item.band), score: item.alliance_score ?? "–" })),
        el("span", { className: `tag status ${stateClass}` }, t(`status_${item.status}`), expired ? ` · ${t("expired")}` : "")),
      el("p", { className: "muted" }, t("issuedExpires", { issued: date(item.issued_at), expires: date(item.expires_at) })),
      el("p", { className: "muted kid", title: item.holder_kid }, t("holderKey", { kid: `${item.holder_kid.slice(0, 12)}…` })));
    if (item.status !== "revoked" && !expired) {
      row.append(el("div", { className: "actions" }, holdButton(item), revokeControls(item)));
    }
    if (item.status !== "revoked") row.append(revokeKeyControls(item));
    list.append(row);
  }
  box.append(list);
}

function revokeControls(item) {
  if (open.revoking !== item.id) {
    return el("button", { type: "button", className: "danger revoke", onclick: () => { open.revoking = item.id; renderAttestations(); } }, t("revoke"));
  }
  const box = el("div", { className: "notice confirm", role: "group" },
    el("p", {}, t("revokeConfirm")),
    el("button", { type: "button", className: "danger confirm-revoke", onclick: () => revoke(item.id) }, t("revokeYes")),
    el("button", { type: "button", className: "secondary", onclick: () => { open.revoking = null; renderAttestations(); } }, t("cancel")));
  queueMicrotask(() => box.querySelector("button")?.focus());
  return box;
}

// Suspending is undone by resuming (a mislaid phone found again); a revocation is final.
function holdButton(item) {
  const action = item.status === "suspended" ? "resume" : "suspend";
  return el("button", { type: "button", className: `secondary ${action}`, onclick: () => hold(item.id, action) }, t(action));
}

async function hold(id, action) {
  const done = await attempt(async () => {
    await api("POST", `/v1/me/attestations/${id}/${action}`);
    view.attestations = (await api("GET", "/v1/me/attestations")).attestations;
  });
  if (done) {
    renderAttestations();
    showNotice(action === "suspend" ? "suspended" : "resumed", { id });
    $(`attestation-${id}`)?.querySelector(`button.${action === "suspend" ? "resume" : "suspend"}`)?.focus();
  }
}

// A lost phone: every attestation bound to its wallet key, at once.
function revokeKeyControls(item) {
  if (open.revokingKey !== item.id) {
    return el("button", { type: "button", className: "secondary revoke-key", onclick: () => { open.revokingKey = item.id; renderAttestations(); } }, t("revokeKey"));
  }
  const box = el("div", { className: "notice confirm", role: "group" },
    el("p", {}, t("revokeKeyConfirm")),
    el("button", { type: "button", className: "danger confirm-revoke-key", onclick: () => revokeKey(item.holder_kid) }, t("revokeKeyYes")),
    el("button", { type: "button", className: "secondary", onclick: () => { open.revokingKey = null; renderAttestations(); } }, t("cancel")));
  queueMicrotask(() => box.querySelector("button")?.focus());
  return box;
}

async function revokeKey(holderKid) {
  let count = 0;
  const done = await attempt(async () => {
    const before = view.attestations.filter((a) => a.holder_kid === holderKid && a.status !== "revoked").length;
    await api("POST", "/v1/me/attestations/revoke", { holder_kid: holderKid });
    open.revokingKey = null;
    count = before;
    view.attestations = (await api("GET", "/v1/me/attestations")).attestations;
  });
  if (done) {
    renderAttestations();
    showNotice("revokedKey", { count });
  }
}

async function revoke(id) {
  const done = await attempt(async () => {
    await api("POST", `/v1/me/attestations/${id}/revoke`);
    open.revoking = null;
    view.attestations = (await api("GET", "/v1/me/attestations")).attestations;
  });
  if (done) {
    renderAttestations();
    showNotice("revoked", { id });
  }
}

// --- her objections ----------------------------------------------------------------------

function renderObjections() {
  const box = $("objections");
  box.replaceChildren();
  if (!view.objections.length) {
    box.append(el("p", { className: "muted" }, t("noObjections")));
    return;
  }
  const list = el("ul", { className: "records" });
  for (const objection of view.objections) {
    const stateClass = objection.status === "open" ? "warn" : objection.status === "upheld" ? "ok" : "bad";
    const row = el("li", { className: "objection", id: `objection-${objection.id}` },
      el("div", { className: "record-line" },
        el("strong", {}, t("objectionLine", { record: objection.record, reason: objection.reason })),
        el("span", { className: `tag status ${stateClass}` }, t(`objection_${objection.status}`))),
      el("p", { className: "muted" }, t("objectionFiledOn", { date: date(objection.created_at) })));
    if (objection.resolution) row.append(el("p", {}, t("resolution", { text: objection.resolution })));
    list.append(row);
  }
  box.append(list);
}

// --- start -----------------------------------------------------------------------------

init(MESSAGES, () => {
  if (!$("app").classList.contains("hidden")) render();
  else renderAlert();
});
$("login").addEventListener("click", startLogin);
$("logout").addEventListener("click", logout);
$("make-offer").addEventListener("click", makeOffer);
if (sessionStorage.getItem(TOKEN)) loadAll();
else showLoggedOut();
