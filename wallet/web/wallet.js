// The web wallet's page: the holder key, the credentials held, a credential offer taken
// (?offer=<link>, a scanned QR code or a pasted link), a presentation request answered
// (?request=<link>, ...) after the resident saw who asks and exactly what would be
// disclosed. Every value written with textContent. Times read from Date.now() at use.

import { init, t, el, lang } from "./i18n.js";
import { MESSAGES } from "./messages.js";
import { holderKey, credentials, addCredential, removeCredential } from "./store.js";
import { readOffer, acceptOffer, OFFER_SCHEME } from "./oid4vci.js";
import {
  REQUEST_SCHEMES, allianceAnchors, readRequest, availableClaims, chooseDisclosures,
  answerRequest, declineRequest,
} from "./oid4vp.js";
import { parseSdJwt, disclosablePaths, namesRecipient } from "./sdjwt.js";
import { WalletError } from "./http.js";
import { sha256b64url } from "./jose.js";

const $ = (id) => document.getElementById(id);
const nowSeconds = () => Math.floor(Date.now() / 1000);
let holder = null;
let pending = null; // the request shown, waiting for agree/decline
let statusKey = null; // re-rendered on a language switch
let statusVars = {};
let lastProblem = null;

// --- what the page says -----------------------------------------------------------------------

function say(key, vars = {}, kind = "ok") {
  statusKey = key;
  statusVars = vars;
  const box = $("status");
  box.replaceChildren();
  if (key) box.append(el("p", { className: `notice ${kind}` }, t(key, vars)));
  $("problem").classList.add("hidden");
  lastProblem = null;
}

function problemText(error) {
  const code = error instanceof WalletError || error.code ? error.code : "unexpected";
  const step = error.step || "link";
  const has = (key) => MESSAGES.en[key] !== undefined;
  const vars = { step: t(`step_${step}`), code, detail: error.detail || error.message || "" };
  if (has(`err_${step}_${code}`)) return t(`err_${step}_${code}`, vars);
  if (has(`err_${code}`)) return t(`err_${code}`, vars);
  if (/^http_5\d\d$/.test(code) || /unavailable$/.test(code)) return t("err_http_503", vars);
  if (code === "rate_limited" || code === "slow_down") return t("err_http_429", vars);
  return `${t("err_generic", vars)}${vars.detail ? ` ${vars.detail}` : ""}`;
}

function showProblem(error) {
  console.warn("wallet:", error && error.message); // no token or link in it: codes and steps
  say(null);
  lastProblem = error;
  const box = $("problem");
  box.textContent = problemText(error);
  box.classList.remove("hidden");
  box.dataset.code = error.code || "unexpected";
}

function dateOf(seconds) {
  return new Date(seconds * 1000).toLocaleDateString(lang() === "zh" ? "zh-CN" : "en-GB", {
    year: "numeric", month: "long", day: "numeric", timeZone: "UTC",
  });
}

function claimLabel(path) {
  const atLeast = /^score_at_least\.(\d+)$/.exec(path);
  if (atLeast) return t("claim_at_least", { n: atLeast[1] });
  const rated = /^rating_at_least\.(\d+)$/.exec(path);
  if (rated) return t("claim_rating_at_least", { n: rated[1] });
  const key = `claim_${path}`;
  return MESSAGES.en[key] !== undefined ? t(key) : path;
}

function claimValue(value) {
  if (value === true) return t("yes");
  if (value === false) return t("no");
  if (value !== null && typeof value === "object") return JSON.stringify(value);
  return String(value);
}

// --- the credentials held ---------------------------------------------------------------------

async function describe(entry) {
  const parsed = parseSdJwt(entry.credential);
  const paths = await disclosablePaths(parsed);
  const claims = [...paths].filter(([, found]) => typeof found.value !== "object" || found.value === null);
  return { payload: parsed.payload, claims };
}

async function renderCredentials() {
  const box = $("credentials");
  const held = await credentials();
  box.replaceChildren();
  if (!held.length) {
    box.append(el("p", { className: "muted" }, t("creds_none")));
    return;
  }
  for (const entry of held) {
    const { payload, claims } = await describe(entry);
    const expired = typeof payload.exp === "number" && payload.exp < nowSeconds();
    const list = el("ul", { className: "claims" });
    for (const [path, found] of claims) {
      list.append(el("li", {}, `${claimLabel(path)}: `, el("span", { className: "value" }, claimValue(found.value))));
    }
    const remove = el("button", { type: "button", className: "secondary" }, t("remove"));
    remove.addEventListener("click", async () => {
      await removeCredential(entry.id);
      await renderCredentials();
    });
    box.append(el("article", { className: "card credential" },
      el("h3", {}, String(payload.alliance || payload.vct || ""),
        el("span", { className: `tag ${expired ? "bad" : "ok"}` }, t(expired ? "expired" : "valid"))),
      el("dl", { className: "facts" },
        el("dt", {}, t("issuer")), el("dd", { className: "mono" }, String(payload.iss || "")),
        el("dt", {}, t("type")), el("dd", { className: "mono" }, String(payload.vct || "")),
        el("dt", {}, t("expires")), el("dd", {}, typeof payload.exp === "number" ? dateOf(payload.exp) : "")),
      el("p", { className: "muted" }, t("disclosable")),
      list, remove));
  }
}

// --- an offer ---------------------------------------------------------------------------------

function askTxCode() {
  const section = $("txcode");
  const input = $("txcode-input");
  section.classList.remove("hidden");
  input.value = "";
  input.focus();
  return new Promise((resolve) => {
    const done = (value) => {
      section.classList.add("hidden");
      $("txcode-form").onsubmit = null;
      $("txcode-cancel").onclick = null;
      resolve(value);
    };
    $("txcode-form").onsubmit = (event) => {
      event.preventDefault();
      done(input.value.trim());
    };
    $("txcode-cancel").onclick = () => done("");
  });
}

async function takeOffer(link) {
  say("working_offer", {}, "warn");
  const offer = await readOffer(link);
  const { credential, issuer } = await acceptOffer(offer, { holder, askTxCode });
  parseSdJwt(credential); // a credential the wallet can read, or a clear error now
  await addCredential({
    id: await sha256b64url(credential), credential, home: issuer, receivedAt: nowSeconds(),
  });
  await renderCredentials();
  say("stored");
}

// --- a request --------------------------------------------------------------------------------

async function trust(held) {
  const anchors = [];
  const names = {};
  let failure = null;
  for (const home of new Set(held.map((entry) => entry.home))) {
    try {
      const found = await allianceAnchors(home);
      anchors.push(...found.anchors);
      Object.assign(names, found.names);
    } catch (error) {
      failure = failure || error;
    }
  }
  if (!anchors.length) throw failure || new WalletError("no_trust_anchor", "registry");
  return { anchors, names };
}

// The first credential held that can answer: of the type the query asks for (its vct:
// a credit standing or a domestic-service credential, docs/CREDENTIALS.md), not expired,
// made for this verifier (its recipients name it: docs/SECURITY.md section 17), holding
// what is asked.
async function usable(request, held) {
  let unnamed = false;
  for (const entry of held) {
    const { payload } = parseSdJwt(entry.credential);
    if (payload.vct !== request.vct) continue;
    if (typeof payload.exp === "number" && payload.exp < nowSeconds()) continue;
    if (!namesRecipient(payload, request.verifier)) {
      unnamed = true;
      continue;
    }
    const available = await availableClaims(entry.credential);
    try {
      const disclose = chooseDisclosures(request, available);
      return { entry, payload, disclose, available };
    } catch (error) {
      // this one can't answer: the next
    }
  }
  throw new WalletError(unnamed ? "recipient_not_named" : "cannot_answer", "choose");
}

function renderRequest() {
  if (!pending) return;
  const { request, chosen } = pending;
  $("verifier-name").textContent = request.verifierName || request.verifier;
  $("verifier-id").textContent = request.verifier;
  $("verifier-client").textContent = request.clientId;
  const list = $("disclose");
  list.replaceChildren();
  for (const path of chosen.disclose) {
    list.append(el("li", {}, `${claimLabel(path)}: `,
      el("span", { className: "value" }, claimValue(chosen.available[path]))));
  }
  $("request-credential").textContent = t("request_credential", {
    issuer: chosen.payload.iss, date: typeof chosen.payload.exp === "number" ? dateOf(chosen.payload.exp) : "",
  });
  $("request").classList.remove("hidden");
}

async function openRequest(link) {
  say("working_request", {}, "warn");
  const held = await credentials();
  if (!held.length) throw new WalletError("no_credential", "choose");
  const request = await readRequest(link, await trust(held));
  const chosen = await usable(request, held);
  pending = { request, chosen };
  say(null);
  renderRequest();
  $("agree").focus();
}

async function respond(agree) {
  if (!pending) return;
  const { request, chosen } = pending;
  $("agree").disabled = $("decline").disabled = true;
  try {
    say("working_answer", {}, "warn");
    if (agree) {
      await answerRequest(request, chosen.entry.credential, chosen.disclose, holder);
    } else {
      await declineRequest(request);
    }
    pending = null;
    $("request").classList.add("hidden");
    say(agree ? "sent" : "declined", { who: request.verifierName || request.verifier });
  } catch (error) {
    showProblem(error);
  } finally {
    $("agree").disabled = $("decline").disabled = false;
  }
}

// --- links, the camera ------------------------------------------------------------------------

async function openLink(text) {
  const link = String(text || "").trim();
  try {
    if (link.startsWith(OFFER_SCHEME)) {
      await takeOffer(link);
    } else if (REQUEST_SCHEMES.some((scheme) => link.startsWith(scheme))) {
      await openRequest(link);
    } else {
      throw new WalletError("invalid_link", "link");
    }
  } catch (error) {
    showProblem(error);
  }
}

let stream = null;

function stopScanning() {
  if (stream) for (const track of stream.getTracks()) track.stop();
  stream = null;
  $("video").srcObject = null;
  $("scanner").classList.add("hidden");
}

async function scan() {
  if (typeof globalThis.jsQR !== "function") {
    showProblem(new WalletError("no_decoder", "camera"));
    return;
  }
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
  } catch (error) {
    showProblem(new WalletError("no_camera", "camera", String(error && error.name)));
    return;
  }
  const video = $("video");
  video.setAttribute("aria-label", t("scan_video"));
  video.srcObject = stream;
  $("scanner").classList.remove("hidden");
  say("scanning", {}, "warn");
  await video.play().catch(() => {});
  const canvas = $("frame");
  const context = canvas.getContext("2d", { willReadFrequently: true });
  const tick = () => {
    if (!stream) return;
    if (video.readyState >= 2 && video.videoWidth) {
      canvas.width = video.videoWidth;
      canvas.height = video.videoHeight;
      context.drawImage(video, 0, 0);
      const image = context.getImageData(0, 0, canvas.width, canvas.height);
      const found = globalThis.jsQR(image.data, image.width, image.height, { inversionAttempts: "dontInvert" });
      if (found && found.data) {
        stopScanning();
        openLink(found.data);
        return;
      }
    }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}

// --- start ------------------------------------------------------------------------------------

function rerender() {
  if (statusKey) say(statusKey, statusVars);
  if (lastProblem) showProblem(lastProblem);
  renderRequest();
  renderCredentials().catch(showProblem);
}

async function start() {
  init(MESSAGES, rerender);
  $("scan").addEventListener("click", scan);
  $("scan-stop").addEventListener("click", () => { stopScanning(); say(null); });
  $("paste").addEventListener("click", () => {
    $("link-form").classList.remove("hidden");
    $("link-input").focus();
  });
  $("link-form").addEventListener("submit", (event) => {
    event.preventDefault();
    openLink($("link-input").value);
    $("link-input").value = "";
  });
  $("agree").addEventListener("click", () => respond(true));
  $("decline").addEventListener("click", () => respond(false));
  try {
    holder = await holderKey();
  } catch (error) {
    showProblem(new WalletError("storage", "link", String(error && error.message)));
    return;
  }
  $("thumbprint").textContent = holder.thumbprint;
  if (holder.created) say("key_made");
  await renderCredentials().catch(showProblem);
  // the resident page's "open in the web wallet" and the kiosk's same-device link; taken
  // out of the address at once (single-use links: a reload must not replay them)
  const query = new URLSearchParams(location.search);
  const link = query.get("offer") || query.get("request");
  if (link) {
    query.delete("offer");
    query.delete("request");
    const rest = query.toString();
    history.replaceState(null, "", `${location.pathname}${rest ? `?${rest}` : ""}`);
    await openLink(link);
  }
  document.body.dataset.ready = "true";
}

start();
