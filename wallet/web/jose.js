// JOSE over WebCrypto for the web wallet: base64url, ES256 JWS (sign and verify), the
// JWK thumbprint, and the ECDH-ES compact JWE of OpenID4VP's direct_post.jwt (RFC 7516,
// RFC 7518 sections 4.6 and 5.3). The Python wallet does the same with protocol/_jws.py
// and protocol/_jwe.py. ES256 signatures are raw r||s both in JWS and in WebCrypto.

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

export const P256 = { name: "ECDSA", namedCurve: "P-256" };
const ES256 = { name: "ECDSA", hash: "SHA-256" };

export function utf8(text) {
  return encoder.encode(text);
}

export function fromUtf8(bytes) {
  return decoder.decode(bytes);
}

export function b64urlEncode(bytes) {
  let text = "";
  for (const byte of new Uint8Array(bytes)) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function b64urlDecode(text) {
  if (typeof text !== "string" || !/^[A-Za-z0-9_-]*$/.test(text)) {
    throw new JoseError("malformed", "not base64url");
  }
  const padded = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
  return base64Decode(padded);
}

export function base64Decode(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

export function b64urlJson(value) {
  return b64urlEncode(utf8(JSON.stringify(value)));
}

export function jsonOf(segment) {
  try {
    return JSON.parse(fromUtf8(b64urlDecode(segment)));
  } catch (error) {
    throw new JoseError("malformed", "a token's part is not base64url JSON");
  }
}

export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

export async function sha256b64url(text) {
  return b64urlEncode(await sha256(utf8(text)));
}

/** A failure with a stable code the page translates (like protocol.ProtocolError). */
export class JoseError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

/** The public JWK of a P-256 public CryptoKey: kty, crv, x, y only. */
export async function publicJwk(publicKey) {
  const { kty, crv, x, y } = await crypto.subtle.exportKey("jwk", publicKey);
  return { kty, crv, x, y };
}

/** RFC 7638: the required members in lexicographic order, no whitespace, SHA-256. */
export async function thumbprint(jwk) {
  const members = JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y });
  return b64urlEncode(await sha256(utf8(members)));
}

/** A compact JWS of `payload` (an object) signed ES256 by `privateKey`. */
export async function signJws(header, payload, privateKey) {
  const input = `${b64urlJson({ alg: "ES256", ...header })}.${b64urlJson(payload)}`;
  const signature = await crypto.subtle.sign(ES256, privateKey, utf8(input));
  return `${input}.${b64urlEncode(signature)}`;
}

/** The parts of a compact JWS (not verified). */
export function decodeJws(token) {
  const parts = typeof token === "string" ? token.split(".") : [];
  if (parts.length !== 3) throw new JoseError("malformed", "a JWS has three parts");
  return {
    header: jsonOf(parts[0]),
    payload: jsonOf(parts[1]),
    signingInput: utf8(`${parts[0]}.${parts[1]}`),
    signature: b64urlDecode(parts[2]),
  };
}

/** Verify a JWS's signature with a WebCrypto public key: throws, never returns false. */
export async function verifyJwsSignature(jws, publicKey, alg) {
  const params = alg === "ES256" ? ES256 : alg === "EdDSA" ? { name: "Ed25519" } : null;
  if (params === null) throw new JoseError("alg_not_allowed", `alg ${alg} is not allowed`);
  const good = await crypto.subtle.verify(params, publicKey, jws.signature, jws.signingInput);
  if (!good) throw new JoseError("invalid_signature", "the signature does not hold");
}

// --- ECDH-ES (direct key agreement) and AES-GCM ---------------------------------------------

const ENC_BITS = { A128GCM: 128, A256GCM: 256 };

function withLength(bytes) {
  const out = new Uint8Array(4 + bytes.length);
  new DataView(out.buffer).setUint32(0, bytes.length);
  out.set(bytes, 4);
  return out;
}

function concat(...arrays) {
  const out = new Uint8Array(arrays.reduce((n, a) => n + a.length, 0));
  let at = 0;
  for (const a of arrays) {
    out.set(a, at);
    at += a.length;
  }
  return out;
}

/** RFC 7518 section 4.6.2: Concat KDF (NIST SP 800-56A) over SHA-256, by hand: WebCrypto
 * has no Concat KDF. One round of the hash covers both 128- and 256-bit keys. */
export async function concatKdf(shared, enc, apu, apv) {
  const bits = ENC_BITS[enc];
  const suppPub = new Uint8Array(4);
  new DataView(suppPub.buffer).setUint32(0, bits);
  const input = concat(
    new Uint8Array([0, 0, 0, 1]), // round 1
    new Uint8Array(shared),
    withLength(utf8(enc)),
    withLength(apu),
    withLength(apv),
    suppPub,
  );
  return (await sha256(input)).slice(0, bits / 8);
}

/** `plaintext` (bytes) encrypted to the P-256 public `jwk` as a compact JWE (ECDH-ES). */
export async function encryptEcdhEs(plaintext, jwk, { enc = "A256GCM", kid, apu, apv } = {}) {
  if (!(enc in ENC_BITS)) throw new JoseError("unsupported_enc", `enc ${enc} is not supported`);
  const recipient = await crypto.subtle.importKey(
    "jwk", { kty: "EC", crv: "P-256", x: jwk.x, y: jwk.y }, { name: "ECDH", namedCurve: "P-256" },
    false, [],
  );
  const ephemeral = await crypto.subtle.generateKey(
    { name: "ECDH", namedCurve: "P-256" }, false, ["deriveBits"],
  );
  const shared = await crypto.subtle.deriveBits(
    { name: "ECDH", public: recipient }, ephemeral.privateKey, 256,
  );
  const header = { alg: "ECDH-ES", enc, epk: await publicJwk(ephemeral.publicKey) };
  if (kid) header.kid = kid;
  if (apu && apu.length) header.apu = b64urlEncode(apu);
  if (apv && apv.length) header.apv = b64urlEncode(apv);
  const raw = await concatKdf(shared, enc, apu || new Uint8Array(), apv || new Uint8Array());
  const key = await crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt"]);
  const protectedHeader = b64urlJson(header);
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const sealed = new Uint8Array(await crypto.subtle.encrypt(
    { name: "AES-GCM", iv, additionalData: utf8(protectedHeader), tagLength: 128 }, key, plaintext,
  ));
  const ciphertext = sealed.slice(0, sealed.length - 16);
  const tag = sealed.slice(sealed.length - 16);
  return [protectedHeader, "", b64urlEncode(iv), b64urlEncode(ciphertext), b64urlEncode(tag)].join(".");
}

export function randomId(bytes = 16) {
  return b64urlEncode(crypto.getRandomValues(new Uint8Array(bytes)));
}
