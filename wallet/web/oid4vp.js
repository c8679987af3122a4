// The web wallet as an OpenID4VP 1.0 wallet (docs/PROTOCOL.md section 11): an
// openid4vp:// request's signed request object fetched and checked (the x5c chain to the
// alliance CA from the registry the resident's home node follows, the x509_hash client
// identifier, the signature, the times), what it asks for shown, and the answer: a
// vp_token disclosing exactly that, encrypted to the verifier's key for direct_post.jwt,
// or the resident's refusal (section 8.5). wallet/_oid4vp.py and protocol/_oid4vp.py in
// the browser.

import {
  JoseError, base64Decode, decodeJws, encryptEcdhEs, jsonOf, utf8, verifyJwsSignature,
} from "./jose.js";
import { verifyChain, x509Hash } from "./x509.js";
import { disclosablePaths, namesRecipient, parseSdJwt, present } from "./sdjwt.js";
import { call, form, FORM, WalletError } from "./http.js";
import { VCTS } from "./oid4vci.js";

export const REQUEST_SCHEMES = ["openid4vp:", "haip-vp:"]; // section 13.1, HAIP 1.0 section 5
const REQUEST_TYP = "oauth-authz-req+jwt";
const CLIENT_ID_PREFIX = "x509_hash:";
const RESPONSE_MODES = ["direct_post.jwt", "direct_post"];
const LEEWAY = 30;

/** The link's client_id and request_uri; an unsigned request by value is refused (it
 * could name anyone: a downgrade). */
export function parseRequestLink(text) {
  let url;
  try {
    url = new URL(String(text).trim());
  } catch (error) {
    throw new WalletError("invalid_request", "request");
  }
  if (!REQUEST_SCHEMES.includes(url.protocol)) throw new WalletError("invalid_request", "request");
  const query = url.searchParams;
  if (query.has("request") || !query.get("request_uri")) throw new WalletError("unsigned_request", "request");
  if (!query.get("client_id")) throw new WalletError("invalid_request", "request");
  return { clientId: query.get("client_id"), requestUri: query.get("request_uri") };
}

/** The alliance CA certificate (DER) and the active members' names, from the registry
 * the home node follows. The home node is trusted as the issuer of the credential is:
 * over TLS; the registry's signature is the nodes' business (they pin the root). */
export async function allianceAnchors(home) {
  const token = await call(`${home.replace(/\/$/, "")}/v1/alliance/registry`, "registry", { as: "text" });
  try {
    const claims = jsonOf(token.split(".")[1]);
    const names = {};
    for (const member of claims.members || []) {
      if (member.status === "active") names[member.id] = String(member.name || member.id);
    }
    return { anchors: [base64Decode(claims.verifier_ca)], names };
  } catch (error) {
    throw new WalletError("no_trust_anchor", "registry");
  }
}

function refuse(code, detail) {
  return new WalletError(code, "verify", detail);
}

/** Fetch and check the request behind `link` (sections 5, 5.10), the chain to one of
 * `anchors`. Returns {claims, clientId, verifier, verifierName, queryId, requested}. */
export async function readRequest(link, { anchors, names }) {
  const { clientId, requestUri } = parseRequestLink(link);
  if (!clientId.startsWith(CLIENT_ID_PREFIX)) throw refuse("client_id_mismatch", "not x509_hash");
  const token = await call(requestUri, "request", {
    as: "text", headers: { Accept: "application/oauth-authz-req+jwt" },
  });
  const now = Math.floor(Date.now() / 1000);
  let jws;
  try {
    jws = decodeJws(token.trim());
  } catch (error) {
    throw refuse("malformed", error.message);
  }
  const { header, payload: claims } = jws;
  if (!["ES256", "EdDSA"].includes(header.alg)) throw refuse("alg_not_allowed", String(header.alg));
  if (header.typ !== REQUEST_TYP) throw refuse("wrong_typ", String(header.typ));
  for (const name of ["jku", "x5u", "jwk", "crit"]) {
    if (name in header) throw refuse("forbidden_header", name);
  }
  if (!Array.isArray(header.x5c) || !header.x5c.length || !header.x5c.every((c) => typeof c === "string")) {
    throw refuse("certificate_invalid", "no x5c");
  }
  let chain;
  try {
    chain = header.x5c.map(base64Decode);
  } catch (error) {
    throw refuse("certificate_invalid", "x5c is not base64");
  }
  let leaf;
  try {
    leaf = await verifyChain(chain, anchors, now);
    if (`${CLIENT_ID_PREFIX}${await x509Hash(leaf.leaf.der)}` !== clientId) {
      throw new JoseError("client_id_mismatch", "the client identifier is not the hash of the leaf");
    }
    await verifyJwsSignature(jws, leaf.key, header.alg);
  } catch (error) {
    if (error instanceof JoseError) throw refuse(error.code, error.message);
    throw error;
  }
  if (claims.client_id !== clientId) throw refuse("client_id_mismatch", "another client than its link");
  if (Number.isInteger(claims.exp) && now > claims.exp + LEEWAY) throw refuse("request_expired", "");
  if (Number.isInteger(claims.iat) && claims.iat > now + LEEWAY) throw refuse("issued_in_future", "");
  if (claims.response_type !== "vp_token") throw refuse("invalid_claim", "response_type");
  if (!RESPONSE_MODES.includes(claims.response_mode)) throw refuse("invalid_claim", "response_mode");
  for (const name of ["response_uri", "nonce"]) {
    if (typeof claims[name] !== "string" || !claims[name]) throw refuse("invalid_claim", name);
  }
  if ("transaction_data" in claims) throw refuse("invalid_claim", "transaction_data");
  const { queryId, requested, vct } = readQuery(claims.dcql_query);
  const verifier = leaf.leaf.uris[0] || clientId;
  return {
    claims, clientId, verifier, queryId, requested, vct,
    verifierName: names[verifier] || leaf.leaf.name || null,
    member: verifier in names,
  };
}

// --- DCQL (section 6), as protocol/_oid4vp.py reads it ----------------------------------------

function credentialQuery(query) {
  const credentials = query && query.credentials;
  if (!Array.isArray(credentials) || credentials.length !== 1) throw refuse("invalid_claim", "dcql");
  const wanted = credentials[0];
  if (!wanted || wanted.format !== "dc+sd-jwt") throw refuse("invalid_claim", "format");
  const vcts = (wanted.meta || {}).vct_values;
  if (!Array.isArray(vcts) || !vcts.some((v) => VCTS.includes(v))) throw refuse("invalid_claim", "vct");
  if (typeof wanted.id !== "string" || !wanted.id) throw refuse("invalid_claim", "id");
  if (!Array.isArray(wanted.claims) || !wanted.claims.length) throw refuse("invalid_claim", "no claims");
  const claims = wanted.claims.map((claim) => {
    const path = claim && claim.path;
    if (!Array.isArray(path) || path.length < 1 || path.length > 2
        || !path.every((p) => typeof p === "string" && p && !p.includes("."))) {
      throw refuse("invalid_claim", "path");
    }
    if (claim.values !== undefined && (!Array.isArray(claim.values) || !claim.values.length)) {
      throw refuse("invalid_claim", "values");
    }
    return { id: typeof claim.id === "string" ? claim.id : null, name: path.join("."), values: claim.values };
  });
  const sets = wanted.claim_sets;
  if (sets !== undefined) {
    const ids = new Set(claims.map((c) => c.id).filter((id) => id !== null));
    if (!Array.isArray(sets) || !sets.length
        || !sets.every((s) => Array.isArray(s) && s.length && s.every((id) => ids.has(id)))) {
      throw refuse("invalid_claim", "claim_sets");
    }
  }
  return { wanted, claims, sets };
}

function readQuery(query) {
  const { wanted, claims } = credentialQuery(query);
  // the type of credential it asks for: the wallet answers with one of that type only
  const vct = wanted.meta.vct_values.find((v) => VCTS.includes(v));
  return { queryId: wanted.id, requested: claims.map((c) => c.name), vct };
}

/** The claims the credential can disclose, by path, with their values. */
export async function availableClaims(credential) {
  const paths = await disclosablePaths(parseSdJwt(credential));
  return Object.fromEntries([...paths].map(([path, found]) => [path, found.value]));
}

/** What answering with a credential holding `available` discloses (section 6.4):
 * every claim named when there are no claim sets, else the first set it meets; never
 * more. Throws cannot_answer. */
export function chooseDisclosures(request, available) {
  const { claims, sets } = credentialQuery(request.claims.dcql_query);
  const met = (claim) => claim.name in available
    && (claim.values === undefined
        || claim.values.some((v) => typeof v === typeof available[claim.name] && v === available[claim.name]));
  if (sets === undefined) {
    if (!claims.every(met)) throw new WalletError("cannot_answer", "choose");
    return claims.map((c) => c.name);
  }
  const byId = new Map(claims.filter((c) => c.id !== null).map((c) => [c.id, c]));
  for (const option of sets) {
    const chosen = option.map((id) => byId.get(id)).filter(Boolean);
    if (chosen.length === option.length && chosen.every(met)) return chosen.map((c) => c.name);
  }
  throw new WalletError("cannot_answer", "choose");
}

function encryptionKey(metadata) {
  const keys = (metadata && metadata.jwks && metadata.jwks.keys) || [];
  const key = keys.find((jwk) => jwk && jwk.alg === "ECDH-ES" && jwk.crv === "P-256" && jwk.x && jwk.y);
  if (!key) throw new WalletError("no_encryption_key", "answer");
  return key;
}

/** The form for the response URI with `params` (section 8.2), encrypted to the
 * verifier's key when the request asks for direct_post.jwt (section 8.3: ECDH-ES,
 * A256GCM where offered, the key's kid, apv = the nonce). */
async function responseForm(request, params) {
  const claims = request.claims;
  if (claims.state !== undefined) params.state = claims.state;
  if (claims.response_mode !== "direct_post.jwt") {
    const fields = {};
    for (const [name, value] of Object.entries(params)) {
      fields[name] = typeof value === "string" ? value : JSON.stringify(value);
    }
    return fields;
  }
  const metadata = claims.client_metadata || {};
  const key = encryptionKey(metadata);
  const offered = metadata.encrypted_response_enc_values_supported || ["A128GCM"];
  const enc = offered.includes("A256GCM") ? "A256GCM" : "A128GCM"; // HAIP: SHOULD use A256GCM
  const response = await encryptEcdhEs(utf8(JSON.stringify(params)), key, {
    enc, kid: key.kid, apu: crypto.getRandomValues(new Uint8Array(16)), apv: utf8(String(claims.nonce)),
  });
  return { response };
}

async function post(request, params) {
  const fields = await responseForm(request, params);
  return call(String(request.claims.response_uri), "answer", { method: "POST", headers: FORM, body: form(fields) });
}

/** Present `credential` disclosing exactly `disclose`, the KB-JWT's aud the full client
 * identifier (section B.3.6), and post it. The response endpoint's answer. Throws
 * recipient_not_named, sending nothing, when the credential's aud leaves the verifier's
 * member id out. */
export async function answerRequest(request, credential, disclose, holder) {
  // a verifier her consent doesn't name would refuse it after seeing it: never sent
  if (!namesRecipient(parseSdJwt(credential).payload, request.verifier)) {
    throw new WalletError("recipient_not_named", "answer");
  }
  const presentation = await present(credential, disclose, {
    holderKey: holder.privateKey, aud: request.claims.client_id, nonce: request.claims.nonce,
    now: Math.floor(Date.now() / 1000),
  });
  return post(request, { vp_token: { [request.queryId]: [presentation] } });
}

/** The resident said no (section 8.5): access_denied, nothing disclosed. */
export async function declineRequest(request) {
  return post(request, { error: "access_denied", error_description: "the resident declined" });
}
