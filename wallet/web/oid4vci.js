// The web wallet as an OpenID4VCI 1.0 client (docs/PROTOCOL.md section 10): a credential
// offer's pre-authorized code (and transaction code) traded for a DPoP-bound access
// token, the holder key proved over a c_nonce, the credential received. The Python
// wallet's wallet/_oid4vci.py accept_offer, step by step.

import { publicJwk, randomId, sha256b64url, signJws, P256 } from "./jose.js";
import { call, form, FORM, WalletError } from "./http.js";

export const OFFER_SCHEME = "openid-credential-offer:";
const PREAUTHORIZED_GRANT = "urn:ietf:params:oauth:grant-type:pre-authorized_code";
const FORMAT = "dc+sd-jwt";
export const VCT = "urn:ccx:credit-standing:1";
// the domestic-service (家政) credential, a second type (issue 18, docs/CREDENTIALS.md)
export const DOMESTIC_VCT = "urn:ccx:domestic-service:1";
export const VCTS = [VCT, DOMESTIC_VCT];

/** The offer behind a link (credential_offer_uri fetched, or credential_offer by value)
 * or an offer's https URL. */
export async function readOffer(text) {
  let url;
  try {
    url = new URL(text.trim());
  } catch (error) {
    throw new WalletError("invalid_offer", "offer");
  }
  let offer;
  if (url.protocol === "https:" || url.protocol === "http:") {
    offer = await call(url.href, "offer");
  } else if (url.protocol === OFFER_SCHEME) {
    const byReference = url.searchParams.get("credential_offer_uri");
    const byValue = url.searchParams.get("credential_offer");
    if (byReference) {
      offer = await call(byReference, "offer");
    } else if (byValue) {
      try {
        offer = JSON.parse(byValue);
      } catch (error) {
        throw new WalletError("invalid_offer", "offer");
      }
    } else {
      throw new WalletError("invalid_offer", "offer");
    }
  } else {
    throw new WalletError("invalid_offer", "offer");
  }
  if (!offer || typeof offer.credential_issuer !== "string") {
    throw new WalletError("invalid_offer", "offer");
  }
  return offer;
}

// OpenID4VCI section 12.2.2, RFC 8414 section 3: the well-known name goes between the
// host and the identifier's path.
function wellKnown(identifier, name) {
  const url = new URL(identifier);
  return `${url.origin}/.well-known/${name}${url.pathname.replace(/\/$/, "")}`;
}

async function dpopProof(key, url, accessToken) {
  const claims = { jti: randomId(), htm: "POST", htu: url, iat: Math.floor(Date.now() / 1000) };
  if (accessToken) claims.ath = await sha256b64url(accessToken);
  return signJws({ typ: "dpop+jwt", jwk: await publicJwk(key.publicKey) }, claims, key.privateKey);
}

function configuration(candidates, metadata) {
  const supported = metadata.credential_configurations_supported || {};
  for (const id of candidates || []) {
    const found = supported[id] || {};
    if (found.format === FORMAT && VCTS.includes(found.vct)) return id;
  }
  throw new WalletError("unsupported_offer", "metadata");
}

/** The pre-authorized code flow for `offer` (from readOffer): the credential (an SD-JWT
 * VC bound to the holder key). `askTxCode(txCodeObject)` returns the code the resident
 * typed when the offer asks for one. Throws WalletError. */
export async function acceptOffer(offer, { holder, askTxCode }) {
  const grant = (offer.grants || {})[PREAUTHORIZED_GRANT];
  if (!grant || typeof grant["pre-authorized_code"] !== "string") {
    throw new WalletError("unsupported_offer", "offer");
  }
  const issuer = offer.credential_issuer;
  const metadata = await call(wellKnown(issuer, "openid-credential-issuer"), "metadata");
  if (metadata.credential_issuer !== issuer) throw new WalletError("invalid_metadata", "metadata");
  const configurationId = configuration(offer.credential_configuration_ids, metadata);
  const serverId = grant.authorization_server || (metadata.authorization_servers || [issuer])[0];
  const server = await call(wellKnown(serverId, "oauth-authorization-server"), "metadata");
  if (server.issuer !== serverId) throw new WalletError("invalid_metadata", "metadata");
  const fields = { grant_type: PREAUTHORIZED_GRANT, "pre-authorized_code": grant["pre-authorized_code"] };
  if (grant.tx_code) {
    const code = await askTxCode(grant.tx_code);
    if (!code) throw new WalletError("tx_code_required", "token");
    fields.tx_code = code;
  }
  // the access token bound to a fresh DPoP key of this one flow (RFC 9449)
  const dpopKey = await crypto.subtle.generateKey(P256, false, ["sign", "verify"]);
  const tokenUrl = String(server.token_endpoint);
  const token = await call(tokenUrl, "token", {
    method: "POST", headers: { ...FORM, DPoP: await dpopProof(dpopKey, tokenUrl) }, body: form(fields),
  });
  const nonce = await call(String(metadata.nonce_endpoint), "nonce", { method: "POST" });
  const proof = await signJws(
    { typ: "openid4vci-proof+jwt", jwk: holder.publicJwk },
    { aud: issuer, iat: Math.floor(Date.now() / 1000), nonce: nonce.c_nonce },
    holder.privateKey,
  );
  const credentialUrl = String(metadata.credential_endpoint);
  const headers = { "Content-Type": "application/json",
                    Authorization: `${token.token_type || "Bearer"} ${token.access_token}` };
  if (token.token_type === "DPoP") headers.DPoP = await dpopProof(dpopKey, credentialUrl, token.access_token);
  const issued = await call(credentialUrl, "credential", {
    method: "POST", headers,
    body: JSON.stringify({ credential_configuration_id: configurationId, proofs: { jwt: [proof] } }),
  });
  const credential = issued && issued.credentials && issued.credentials[0] && issued.credentials[0].credential;
  if (typeof credential !== "string") throw new WalletError("invalid_response", "credential");
  return { credential, issuer };
}
