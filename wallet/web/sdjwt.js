// SD-JWT VC in the browser (RFC 9901, docs/PROTOCOL.md sections 5-6): what a held
// credential says and which of its claims are selectively disclosable, and the
// presentation that keeps only chosen disclosures and ends with a key binding JWT, as
// protocol.present does for the Python wallet.

import { JoseError, b64urlDecode, fromUtf8, sha256b64url, signJws, utf8, sha256, b64urlEncode } from "./jose.js";

const KB_JWT_TYP = "kb+jwt";

/** The parts of an SD-JWT (issuer JWT, disclosure texts); the payload unverified: the
 * wallet files and describes its own credential by it, the verifier checks it. */
export function parseSdJwt(token) {
  const parts = typeof token === "string" ? token.split("~") : [];
  if (parts.length < 2 || parts[parts.length - 1] !== "") {
    throw new JoseError("malformed", "not an SD-JWT (issuer JWT~disclosures~)");
  }
  const issuerJwt = parts[0];
  const segments = issuerJwt.split(".");
  if (segments.length !== 3) throw new JoseError("malformed", "the issuer JWT has three parts");
  let payload;
  try {
    payload = JSON.parse(fromUtf8(b64urlDecode(segments[1])));
  } catch (error) {
    throw new JoseError("malformed", "the issuer JWT's payload is not JSON");
  }
  const disclosures = parts.slice(1, -1).map((text) => {
    let value;
    try {
      value = JSON.parse(fromUtf8(b64urlDecode(text)));
    } catch (error) {
      throw new JoseError("malformed", "a disclosure is not base64url JSON");
    }
    if (!Array.isArray(value) || value.length !== 3 || typeof value[1] !== "string") {
      throw new JoseError("malformed", "a disclosure is not [salt, name, value]");
    }
    return { text, name: value[1], value: value[2] };
  });
  return { issuerJwt, payload, disclosures };
}

/** Each disclosable claim by its path ("band", "score_at_least.650") with its value and
 * the disclosures it needs (its own and its parents'). */
export async function disclosablePaths(parsed) {
  const byDigest = new Map();
  for (const d of parsed.disclosures) byDigest.set(await sha256b64url(d.text), d);
  const paths = new Map();
  const walk = (object, prefix, needed) => {
    if (object === null || typeof object !== "object" || Array.isArray(object)) return;
    for (const digest of Array.isArray(object._sd) ? object._sd : []) {
      const found = byDigest.get(digest);
      if (!found) continue;
      const path = prefix ? `${prefix}.${found.name}` : found.name;
      const chain = [...needed, found.text];
      paths.set(path, { value: found.value, disclosures: chain });
      walk(found.value, path, chain);
    }
    for (const [name, value] of Object.entries(object)) {
      if (name !== "_sd") walk(value, prefix ? `${prefix}.${name}` : name, needed);
    }
  };
  walk(parsed.payload, "", []);
  return paths;
}

/** Whether the credential whose issuer JWT says `payload` may go to `verifier` (a member
 * id): its issuer-signed aud names it, or it has none (every member). Every verifier
 * refuses one whose aud leaves it out (RFC 7519 section 4.1.3), after seeing it: the
 * wallet asks first, as protocol.check_recipient does for the Python wallet. */
export function namesRecipient(payload, verifier) {
  if (!payload || !("aud" in payload)) return true;
  const names = typeof payload.aud === "string" ? [payload.aud] : payload.aud;
  return Array.isArray(names) && names.includes(verifier);
}

/** The presentation of `credential` disclosing only `disclose` (paths), with a KB-JWT
 * for `aud` and `nonce` signed by the holder's non-extractable key. */
export async function present(credential, disclose, { holderKey, aud, nonce, now }) {
  const parsed = parseSdJwt(credential);
  const paths = await disclosablePaths(parsed);
  const chosen = new Set();
  for (const path of disclose) {
    const found = paths.get(path);
    if (!found) throw new JoseError("disclosure_not_found", `the credential can't disclose ${path}`);
    for (const text of found.disclosures) chosen.add(text);
  }
  // the issuer's order of disclosures (nothing in it depends on which were chosen)
  const kept = parsed.disclosures.map((d) => d.text).filter((text) => chosen.has(text));
  const prefix = [parsed.issuerJwt, ...kept, ""].join("~");
  const kb = await signJws(
    { typ: KB_JWT_TYP },
    { iat: now, aud, nonce, sd_hash: b64urlEncode(await sha256(utf8(prefix))) },
    holderKey,
  );
  return prefix + kb;
}
