// Research probe: a minimal wallet on @openid4vc/openid4vci + openid4vp 0.4.6 against a loopback node.
import crypto from 'node:crypto'
import * as jose from 'jose'
import { setGlobalConfig } from '@openid4vc/utils'
import { Openid4vciClient } from '@openid4vc/openid4vci'
import { Openid4vpClient } from '@openid4vc/openid4vp'
import { clientAuthenticationNone, HashAlgorithm, calculateJwkThumbprint } from '@openid4vc/oauth2'

const ISSUER = process.argv[2]            // e.g. https://localhost:8443
if (ISSUER.startsWith('http://')) setGlobalConfig({ allowInsecureUrls: true })
const CA_PEM = process.env.PROBE_CA_PEM   // trust anchor for the verifier's x509_hash leaf

// --- keys: one P-256 key for DPoP, one for the credential (holder key) ---
const mk = async () => { const { privateKey, publicKey } = await jose.generateKeyPair('ES256', { extractable: true })
  return { priv: await jose.exportJWK(privateKey), pub: await jose.exportJWK(publicKey) } }
const dpopKey = await mk(), holderKey = await mk()
const privByThumb = new Map()
for (const k of [dpopKey, holderKey]) privByThumb.set(await jose.calculateJwkThumbprint(k.pub), k.priv)

const callbacks = {
  fetch,   // global fetch (undici); trusts NODE_EXTRA_CA_CERTS
  hash: (data, alg) => crypto.createHash(alg.replace('-', '').toLowerCase()).update(data).digest(),
  generateRandom: (n) => crypto.randomBytes(n),
  clientAuthentication: clientAuthenticationNone({ clientId: 'ccx-cli-wallet' }),
  signJwt: async (signer, { header, payload }) => {
    if (signer.method !== 'jwk') throw new Error('only jwk signers in this probe')
    const priv = privByThumb.get(await jose.calculateJwkThumbprint(signer.publicJwk))
    const jwt = await new jose.SignJWT(payload).setProtectedHeader(header).sign(await jose.importJWK(priv, signer.alg))
    return { jwt, signerJwk: signer.publicJwk }
  },
  // request-object verification: x5c leaf must chain to our CA (x509_hash: lib checks the hash itself)
  verifyJwt: async (signer, { compact }) => {
    if (signer.method !== 'x5c') return { verified: false }
    const leaf = new crypto.X509Certificate(Buffer.from(signer.x5c[0], 'base64'))
    const ca = new crypto.X509Certificate(CA_PEM)
    const chained = leaf.checkIssued(ca) && leaf.verify(ca.publicKey) && new Date(leaf.validTo) > new Date()
    if (!chained) return { verified: false }
    try { await jose.compactVerify(compact, leaf.publicKey); } catch { return { verified: false } }
    const jwk = leaf.publicKey.export({ format: 'jwk' })
    return { verified: true, signerJwk: jwk }
  },
  encryptJwe: async (enc, plaintext) => {
    const key = await jose.importJWK(enc.publicJwk, enc.alg)
    const hdr = { alg: enc.alg, enc: enc.enc, ...(enc.publicJwk.kid ? { kid: enc.publicJwk.kid } : {}) }
    const jwe = await new jose.CompactEncrypt(new TextEncoder().encode(plaintext)).setProtectedHeader(hdr)
      .setKeyManagementParameters({ ...(enc.apu ? { apu: jose.base64url.decode(enc.apu) } : {}), ...(enc.apv ? { apv: jose.base64url.decode(enc.apv) } : {}) })
      .encrypt(key)
    return { jwe, encryptionJwk: enc.publicJwk }
  },
  decryptJwe: async () => ({ decrypted: false }),
  // required by oid4vc-ts for every x509_* prefix, x509_hash included
  getX509CertificateMetadata: (b64der) => {
    const san = new crypto.X509Certificate(Buffer.from(b64der, 'base64')).subjectAltName ?? ''
    const parts = san.split(', ')
    return { sanDnsNames: parts.filter((p) => p.startsWith('DNS:')).map((p) => p.slice(4)),
             sanUriNames: parts.filter((p) => p.startsWith('URI:')).map((p) => p.slice(4)) }
  },
}
const dpop = { signer: { method: 'jwk', alg: 'ES256', publicJwk: dpopKey.pub } }
const holderSigner = { method: 'jwk', alg: 'ES256', publicJwk: holderKey.pub }

async function issue(client, offerUri, grant) {
  const offer = await client.resolveCredentialOffer(offerUri)
  const md = await client.resolveIssuerMetadata(offer.credential_issuer)
  console.log('metadata version detected:', md.originalDraftVersion)
  const configId = offer.credential_configuration_ids[0]
  let tok
  if (grant === 'pre') {
    tok = await client.retrievePreAuthorizedCodeAccessTokenFromOffer({ credentialOffer: offer, issuerMetadata: md, txCode: '493536', dpop })
  } else {
    const scope = md.credentialIssuer.credential_configurations_supported[configId].scope
    const redirectUri = 'https://wallet.ccx.invalid/cb'   // never dereferenced: we read the 302 Location
    const { authorizationRequestUrl, pkce, dpop: dpop2 } = await client.createAuthorizationRequestUrlFromOffer({
      clientId: 'ccx-cli-wallet', credentialOffer: offer, issuerMetadata: md, scope, redirectUri, dpop })
    const r = await fetch(authorizationRequestUrl, { redirect: 'manual' })   // the node authenticates the resident here
    const authResp = client.parseAndVerifyAuthorizationResponseRedirectUrl({
      url: r.headers.get('location'), authorizationServerMetadata: md.authorizationServers[0] })
    tok = await client.retrieveAuthorizationCodeAccessTokenFromOffer({ credentialOffer: offer, issuerMetadata: md,
      authorizationCode: authResp.code, pkceCodeVerifier: pkce.codeVerifier, redirectUri, dpop: dpop2 ?? dpop })
  }
  console.log('token_type:', tok.accessTokenResponse.token_type, 'dpop nonce carried:', !!tok.dpop?.nonce)
  const { c_nonce } = await client.requestNonce({ issuerMetadata: md })
  const { jwt } = await client.createCredentialRequestJwtProof({ issuerMetadata: md, credentialConfigurationId: configId,
    signer: holderSigner, nonce: c_nonce, ...(grant === 'authz' ? { clientId: 'ccx-cli-wallet' } : {}) })
  const cr = await client.retrieveCredentials({ issuerMetadata: md, accessToken: tok.accessTokenResponse.access_token,
    credentialConfigurationId: configId, proofs: { jwt: [jwt] }, dpop: tok.dpop })
  return cr.credentialResponse.credentials[0].credential
}

// KB-JWT by hand (oid4vc-ts has no SD-JWT support)
async function present(sdjwt, discloseNames, aud, nonce) {
  const [issuerJwt, ...rest] = sdjwt.split('~'); const discl = rest.filter(Boolean)
  const keep = discl.filter((d) => discloseNames.includes(JSON.parse(Buffer.from(d, 'base64url'))[1]))
  const presented = [issuerJwt, ...keep].join('~') + '~'
  const sd_hash = crypto.createHash('sha256').update(presented, 'ascii').digest('base64url')
  const kb = await new jose.SignJWT({ iat: Math.floor(Date.now() / 1000), aud, nonce, sd_hash })
    .setProtectedHeader({ alg: 'ES256', typ: 'kb+jwt' }).sign(await jose.importJWK(holderKey.priv, 'ES256'))
  return presented + kb
}

const vci = new Openid4vciClient({ callbacks })
const c1 = await issue(vci, `openid-credential-offer://?credential_offer_uri=${encodeURIComponent(ISSUER + '/offer/pre')}`, 'pre')
console.log('pre-authorized: got credential, disclosures:', c1.split('~').length - 2)
const c2 = await issue(vci, `openid-credential-offer://?credential_offer_uri=${encodeURIComponent(ISSUER + '/offer/authz')}`, 'authz')
console.log('authorization code: got credential, disclosures:', c2.split('~').length - 2)

const vp = new Openid4vpClient({ callbacks })
for (const mode of ['direct_post.jwt', 'direct_post']) {
  const { request } = await (await fetch(ISSUER + '/vp/start', { method: 'POST', body: JSON.stringify({ mode }) })).json()
  const parsed = vp.parseOpenid4vpAuthorizationRequest({ authorizationRequest: request })
  const walletNonce = crypto.randomBytes(16).toString('base64url')
  const resolved = await vp.resolveOpenId4vpAuthorizationRequest({ authorizationRequestPayload: parsed.params,
    wallet: { nonce: walletNonce, metadata: { vp_formats_supported: { 'dc+sd-jwt': { 'sd-jwt_alg_values': ['ES256'], 'kb-jwt_alg_values': ['ES256'] } },
      client_id_prefixes_supported: ['x509_hash'], authorization_encryption_alg_values_supported: ['ECDH-ES'], authorization_encryption_enc_values_supported: ['A128GCM', 'A256GCM'] } } })
  const req = resolved.authorizationRequestPayload
  console.log('VP', mode, 'client prefix:', resolved.client.prefix, 'effective:', resolved.client.effective.slice(0, 24) + '…', 'version:', resolved.version, 'wallet_nonce echoed:', resolved.jar?.authorizationRequestPayload.wallet_nonce === walletNonce)
  const q = resolved.dcql.query.credentials[0]
  const presentation = await present(c1, q.claims.map((c) => c.path[0]), resolved.client.effective, req.nonce)
  const created = await vp.createOpenid4vpAuthorizationResponse({ authorizationRequestPayload: req,
    authorizationResponsePayload: { vp_token: { [q.id]: [presentation] } },
    ...(mode === 'direct_post.jwt' ? { jarm: { encryption: { nonce: crypto.randomBytes(16).toString('base64url') },
      serverMetadata: { authorization_signing_alg_values_supported: [], authorization_encryption_alg_values_supported: ['ECDH-ES'], authorization_encryption_enc_values_supported: ['A256GCM', 'A128GCM'] } } } : {}) })
  const sub = await vp.submitOpenid4vpAuthorizationResponse({ authorizationRequestPayload: req,
    authorizationResponsePayload: created.authorizationResponsePayload, jarm: created.jarm ? { responseJwt: created.jarm.responseJwt } : undefined })
  console.log('VP', mode, 'response endpoint said:', sub.response.status, await sub.response.text())
}
