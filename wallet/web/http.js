// The wallet's one way to call a node: fetch with a timeout, and every failure as a
// WalletError with a stable code the page translates (the node's own {"error": {"code",
// "message"}}, OAuth's {"error", "error_description"}, or the status), like the Python
// wallet's _json/_refusal.

export const TIMEOUT_MS = 15000;

/** A failure the page shows: `code` picks the message, `step` says where it happened,
 * `detail` is the other side's own words. */
export class WalletError extends Error {
  constructor(code, step, detail = "") {
    super(`${step}: ${code}${detail ? ` (${detail})` : ""}`);
    this.code = code;
    this.step = step;
    this.detail = detail;
  }
}

async function refusal(response, step) {
  let code = `http_${response.status}`;
  let detail = response.statusText || "";
  try {
    const body = await response.json();
    if (body && typeof body.error === "object" && body.error !== null) {
      code = String(body.error.code);
      detail = String(body.error.message || "");
    } else if (body && typeof body.error === "string") {
      code = body.error;
      detail = String(body.error_description || "");
    }
  } catch (error) {
    // not JSON: the status says it
  }
  return new WalletError(code, step, detail);
}

/** `fetch` of `url`; the answer as text or JSON; refusals and network failures thrown. */
export async function call(url, step, { method = "GET", headers = {}, body, as = "json" } = {}) {
  let response;
  try {
    response = await fetch(url, {
      method, headers, body, credentials: "omit", redirect: "error", cache: "no-store",
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  } catch (error) {
    throw new WalletError("unreachable", step, String(error && error.message || error));
  }
  if (!response.ok) throw await refusal(response, step);
  if (as === "text") return response.text();
  try {
    return await response.json();
  } catch (error) {
    throw new WalletError("invalid_response", step, "not JSON");
  }
}

export function form(fields) {
  return new URLSearchParams(fields).toString();
}

export const FORM = { "Content-Type": "application/x-www-form-urlencoded" };
