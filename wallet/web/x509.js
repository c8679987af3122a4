// X.509 for OpenID4VP's x509_hash client identifiers, in the browser: the chain of the
// request object's x5c up to the alliance CA (HAIP 1.0 section 5: the wallet MUST
// validate it), as protocol/_x509.py verify_x5c does for the Python wallet.
//
// A minimal DER reader written here rather than a library: the page is static (any host,
// no build step, no third-party code beyond the vendored QR decoder), and the few
// fields needed (the to-be-signed bytes, the signature, validity, basic constraints,
// the URI names, the key) fit in the reader below. WebCrypto does the signatures.

import { JoseError, sha256, b64urlEncode, P256 } from "./jose.js";

const MAX_CHAIN = 3;
const MAX_CERTIFICATE_BYTES = 8192;
const OID = {
  ecdsaWithSha256: "2a8648ce3d040302",
  ed25519: "2b6570",
  basicConstraints: "551d13",
  subjectAltName: "551d11",
  commonName: "550403",
};

function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function bad(message) {
  return new JoseError("certificate_invalid", message);
}

/** One DER element at `at` in `bytes`: tag, content bounds, total end. */
function element(bytes, at) {
  if (at + 2 > bytes.length) throw bad("truncated DER");
  const tag = bytes[at];
  let length = bytes[at + 1];
  let start = at + 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    if (count < 1 || count > 3 || start + count > bytes.length) throw bad("bad DER length");
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + bytes[start + i];
    start += count;
  }
  const end = start + length;
  if (end > bytes.length) throw bad("truncated DER");
  return { tag, start, end, at, bytes, content: () => bytes.subarray(start, end), whole: () => bytes.subarray(at, end) };
}

/** The children of a constructed element. */
function children(parent) {
  const found = [];
  for (let at = parent.start; at < parent.end; ) {
    const child = element(parent.bytes, at);
    found.push(child);
    at = child.end;
  }
  return found;
}

function expect(node, tag, what) {
  if (!node || node.tag !== tag) throw bad(`${what}: unexpected DER`);
  return node;
}

function time(node) {
  const text = new TextDecoder().decode(node.content());
  const m = node.tag === 0x17
    ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text)
    : /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text);
  if (!m) throw bad("a validity time is malformed");
  let year = Number(m[1]);
  if (node.tag === 0x17) year += year < 50 ? 2000 : 1900; // RFC 5280 section 4.1.2.5.1
  return Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])) / 1000;
}

function commonName(name) {
  for (const rdn of children(name)) {
    for (const pair of children(rdn)) {
      const [oid, value] = children(pair);
      if (oid && hex(oid.content()) === OID.commonName) return new TextDecoder().decode(value.content());
    }
  }
  return null;
}

/** The fields of a DER certificate this wallet checks. */
export function parseCertificate(der) {
  if (der.length > MAX_CERTIFICATE_BYTES) throw bad(`a certificate is larger than ${MAX_CERTIFICATE_BYTES} bytes`);
  const certificate = expect(element(der, 0), 0x30, "certificate");
  if (certificate.end !== der.length) throw bad("trailing bytes after the certificate");
  const [tbs, algorithm, signature] = children(certificate);
  expect(tbs, 0x30, "tbsCertificate");
  expect(signature, 0x03, "signatureValue");
  const fields = children(tbs);
  let i = fields[0] && fields[0].tag === 0xa0 ? 1 : 0; // [0] version
  i += 1; // serialNumber
  const innerAlgorithm = expect(fields[i++], 0x30, "signature algorithm");
  const issuer = expect(fields[i++], 0x30, "issuer");
  const [notBefore, notAfter] = children(expect(fields[i++], 0x30, "validity"));
  const subject = expect(fields[i++], 0x30, "subject");
  const spki = expect(fields[i++], 0x30, "subjectPublicKeyInfo");
  const algorithmOid = hex(children(algorithm)[0].content());
  if (hex(children(innerAlgorithm)[0].content()) !== algorithmOid) throw bad("two signature algorithms");
  const parsed = {
    der,
    tbs: tbs.whole(),
    algorithm: algorithmOid,
    signature: signature.content().subarray(1), // the BIT STRING's unused-bits byte
    issuer: hex(issuer.whole()),
    subject: hex(subject.whole()),
    name: commonName(subject),
    notBefore: time(notBefore),
    notAfter: time(notAfter),
    spki: spki.whole(),
    keyAlgorithm: hex(children(children(spki)[0])[0].content()),
    ca: false,
    uris: [],
  };
  for (; i < fields.length; i++) {
    if (fields[i].tag !== 0xa3) continue; // [3] extensions
    for (const extension of children(expect(children(fields[i])[0], 0x30, "extensions"))) {
      const parts = children(extension);
      const oid = hex(parts[0].content());
      const value = element(parts[parts.length - 1].content(), 0);
      if (oid === OID.basicConstraints) {
        const inner = children(value);
        parsed.ca = inner.length > 0 && inner[0].tag === 0x01 && inner[0].content()[0] !== 0;
      } else if (oid === OID.subjectAltName) {
        for (const general of children(value)) {
          if (general.tag === 0x86) parsed.uris.push(new TextDecoder().decode(general.content()));
        }
      }
    }
  }
  return parsed;
}

/** ECDSA's DER signature (SEQUENCE of two INTEGERs) as WebCrypto's raw r||s. */
export function rawEcdsaSignature(der) {
  const [r, s] = children(expect(element(der, 0), 0x30, "ECDSA signature"));
  const out = new Uint8Array(64);
  for (const [index, integer] of [r, s].entries()) {
    let value = expect(integer, 0x02, "ECDSA signature").content();
    while (value.length > 32 && value[0] === 0) value = value.subarray(1);
    if (value.length > 32) throw bad("an ECDSA signature value is too long");
    out.set(value, index * 32 + 32 - value.length);
  }
  return out;
}

const KEY_PARAMS = { "2a8648ce3d0201": P256, "2b6570": { name: "Ed25519" } }; // id-ecPublicKey, Ed25519

/** The certificate's public key as a WebCrypto verification key (P-256 or Ed25519). */
export async function publicKeyOf(certificate) {
  const params = KEY_PARAMS[certificate.keyAlgorithm];
  if (!params) throw bad("the certificate's key is neither P-256 nor Ed25519");
  try {
    return await crypto.subtle.importKey("spki", certificate.spki, params, false, ["verify"]);
  } catch (error) {
    throw bad("the certificate's key is not a P-256 or Ed25519 key");
  }
}

async function issuedBy(child, parent) {
  if (child.issuer !== parent.subject) return false;
  const key = await publicKeyOf(parent).catch(() => null);
  if (key === null) return false;
  try {
    if (child.algorithm === OID.ecdsaWithSha256 && key.algorithm.name === "ECDSA") {
      return await crypto.subtle.verify(
        { name: "ECDSA", hash: "SHA-256" }, key, rawEcdsaSignature(child.signature), child.tbs,
      );
    }
    if (child.algorithm === OID.ed25519 && key.algorithm.name === "Ed25519") {
      return await crypto.subtle.verify({ name: "Ed25519" }, key, child.signature, child.tbs);
    }
  } catch (error) {
    return false;
  }
  return false;
}

function checkTime(certificate, now, what) {
  if (!(certificate.notBefore <= now && now <= certificate.notAfter)) {
    throw bad(`${what} is not valid now (expired, or not yet valid)`);
  }
}

/** The leaf chain[0] once the chain (DER certificates) reaches one of `anchors` (DER),
 * by protocol/_x509.py's rules: each certificate issued by the next or by an anchor,
 * each valid at `now` (seconds), every one above the leaf a CA, the leaf not a CA.
 * Throws JoseError certificate_invalid or certificate_untrusted. */
export async function verifyChain(chain, anchors, now) {
  if (!chain.length || chain.length > MAX_CHAIN) throw bad(`x5c must hold 1 to ${MAX_CHAIN} certificates`);
  const certificates = chain.map(parseCertificate);
  const trusted = anchors.map(parseCertificate);
  const leaf = certificates[0];
  if (leaf.ca) throw bad("x5c[0] is a CA certificate, not a leaf");
  for (const [index, certificate] of certificates.entries()) {
    checkTime(certificate, now, `x5c[${index}]`);
    let anchor = null;
    for (const candidate of trusted) {
      if (await issuedBy(certificate, candidate)) {
        anchor = candidate;
        break;
      }
    }
    if (anchor !== null) {
      checkTime(anchor, now, "the trust anchor");
      return { leaf, key: await publicKeyOf(leaf) };
    }
    if (index + 1 === certificates.length) {
      throw new JoseError("certificate_untrusted", "the certificate chain reaches no trusted authority");
    }
    const parent = certificates[index + 1];
    if (!parent.ca || !(await issuedBy(certificate, parent))) {
      throw new JoseError("certificate_untrusted", `x5c[${index}] is not issued by x5c[${index + 1}]`);
    }
  }
  throw new JoseError("certificate_untrusted", "the certificate chain reaches no trusted authority");
}

/** The x509_hash client identifier's value: base64url(SHA-256(DER of the leaf)). */
export async function x509Hash(der) {
  return b64urlEncode(await sha256(der));
}
