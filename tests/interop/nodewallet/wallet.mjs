// A small wallet on the OpenWallet Foundation's OpenID4VC libraries (@openid4vc/* 0.4.6,
// pinned in package-lock.json), driven by tests/interop/test_nodewallet.py: it obtains the
// credit standing from a ccx node by both OpenID4VCI 1.0 grants, and presents it to a ccx
// node's OpenID4VP 1.0 verifier. The libraries carry no JOSE code: the callbacks below
// bring it (jose 6 and node:crypto), as every wallet built on them does.
//
//   node wallet.mjs pre-authorized <offer link> [<tx_code>]   -> {"credential", "holder"}
//   node wallet.mjs authorization-code <issuer> <resident>    -> {"credential", "holder"}
//   node wallet.mjs present <openid4vp link> <credential> <holder JWK> <CA PEM file>
//                                                  -> {"status", "body", "client_id", "claims"}
//
// Every answer is one JSON line on stdout; a failure is {"error", "detail"} and exit 1.
// The clock is the test's: CCX_WALLET_NOW (seconds) replaces Date's (the libraries read
// the wall clock for DPoP and proof iat); TLS trusts NODE_EXTRA_CA_CERTS.

import crypto from 'node:crypto'
import fs from 'node:fs'
import * as jose from 'jose'
import { clientAuthenticationNone } from '@openid4vc/oauth2'
import { Openid4vciClient } from '@openid4vc/openid4vci'
import { Openid4vpClient } from '@openid4vc/openid4vp'

const CLIENT_ID = 'ccx-interop-node-wallet'
const REDIRECT_URI = 'http://127.0.0.1/callback'

// --- the test's clock ----------------------------------------------------------------------
if (process.env.CCX_WALLET_NOW) {
  const fixed = Number(process.env.CCX_WALLET_NOW) * 1000
  const RealDate = Date
  globalThis.Date = class extends RealDate {
    constructor(...args) {
      if (args.length === 0) super(fixed)
      else super(...args)
    }
    static now() {
      return fixed
    }
  }
}

// --- crypto callbacks ----------------------------------------------------------------------
const keys = new Map() // thumbprint of a public JWK -> its private CryptoKey

async function newKey() {
  const { publicKey, privateKey } = await jose.generateKeyPair('ES256', { extractable: true })
  const publicJwk = await jose.exportJWK(publicKey)
  keys.set(await jose.calculateJwkThumbprint(publicJwk), privateKey)
  return { publicJwk, privateKey }
}

const callbacks = {
  hash: (data, alg) => new Uint8Array(crypto.createHash(alg.replace('-', '').toLowerCase()).update(data).digest()),
  generateRandom: (n) => new Uint8Array(crypto.randomBytes(n)),
  clientAuthentication: clientAuthenticationNone({ clientId: CLIENT_ID }),
  signJwt: async (signer, { header, payload }) => {
    if (signer.method !== 'jwk') throw new Error(`this wallet signs with jwk signers only, not ${signer.method}`)
    const privateKey = keys.get(await jose.calculateJwkThumbprint(signer.publicJwk))
    const jwt = await new jose.SignJWT(payload).setProtectedHeader(header).sign(privateKey)
    return { jwt, signerJwk: signer.publicJwk }
  },
}

// --- the dev identity provider's pages, walked as a browser would ----------------------------
function form(html) {
  const action = /<form[^>]*action="([^"]*)"/.exec(html)?.[1]
  if (!action) throw new Error(`expected a form, got ${html.slice(0, 200)}`)
  const fields = {}
  for (const [, name, value] of html.matchAll(/<input type="hidden" name="([^"]*)" value="([^"]*)">/g)) {
    fields[unescape(name)] = unescape(value)
  }
  return { action: unescape(action), fields }
}

function unescape(text) {
  return text.replaceAll('&quot;', '"').replaceAll('&#x27;', "'").replaceAll('&lt;', '<').replaceAll('&gt;', '>').replaceAll('&amp;', '&')
}

async function post(url, fields) {
  return fetch(url, { method: 'POST', redirect: 'manual', body: new URLSearchParams(fields) })
}

async function logIn(authorizationRequestUrl, resident) {
  const toLogin = await fetch(authorizationRequestUrl, { redirect: 'manual' })
  if (toLogin.status !== 303) throw new Error(`authorization endpoint: ${toLogin.status} ${await toLogin.text()}`)
  const loginPage = form(await (await fetch(toLogin.headers.get('location'), { redirect: 'manual' })).text())
  const autoPost = form(await (await post(loginPage.action, { ...loginPage.fields, subject: resident, login: 'yes' })).text())
  const consent = await post(autoPost.action, autoPost.fields)
  if (consent.status === 303) return consent.headers.get('location') // sent back at once
  const decision = form(await consent.text())
  const back = await post(decision.action, { ...decision.fields, answer: 'allow' })
  if (back.status !== 303) throw new Error(`decision: ${back.status} ${await back.text()}`)
  return back.headers.get('location')
}

// --- OpenID4VCI ------------------------------------------------------------------------------
async function credentialFor(vci, issuerMetadata, offer, token) {
  const holder = await newKey()
  const configurationId = offer.credential_configuration_ids[0]
  const { c_nonce } = await vci.requestNonce({ issuerMetadata })
  const { jwt } = await vci.createCredentialRequestJwtProof({
    issuerMetadata,
    credentialConfigurationId: configurationId,
    signer: { method: 'jwk', alg: 'ES256', publicJwk: holder.publicJwk },
    nonce: c_nonce,
  })
  const response = await vci.retrieveCredentials({
    issuerMetadata,
    accessToken: token.accessTokenResponse.access_token,
    credentialConfigurationId: configurationId,
    proofs: { jwt: [jwt] },
    dpop: token.dpop,
  })
  return {
    credential: response.credentialResponse.credentials[0].credential,
    holder: await jose.exportJWK(holder.privateKey),
    version: issuerMetadata.originalDraftVersion,
    token_type: token.accessTokenResponse.token_type,
  }
}

async function preAuthorized(link, txCode) {
  const vci = new Openid4vciClient({ callbacks })
  const offer = await vci.resolveCredentialOffer(link)
  const issuerMetadata = await vci.resolveIssuerMetadata(offer.credential_issuer)
  const dpopKey = await newKey()
  const token = await vci.retrievePreAuthorizedCodeAccessTokenFromOffer({
    credentialOffer: offer,
    issuerMetadata,
    txCode,
    dpop: { signer: { method: 'jwk', alg: 'ES256', publicJwk: dpopKey.publicJwk } },
  })
  return credentialFor(vci, issuerMetadata, offer, token)
}

async function authorizationCode(issuer, resident) {
  const vci = new Openid4vciClient({ callbacks })
  const issuerMetadata = await vci.resolveIssuerMetadata(issuer)
  // a wallet-initiated flow: the offer is the wallet's own, by value (section 4.1.1)
  const offer = await vci.resolveCredentialOffer(
    'openid-credential-offer://?credential_offer=' +
      encodeURIComponent(JSON.stringify({
        credential_issuer: issuer,
        credential_configuration_ids: Object.keys(issuerMetadata.credentialIssuer.credential_configurations_supported),
        grants: { authorization_code: {} },
      })),
  )
  const configuration = issuerMetadata.credentialIssuer.credential_configurations_supported[offer.credential_configuration_ids[0]]
  const dpopKey = await newKey()
  const dpop = { signer: { method: 'jwk', alg: 'ES256', publicJwk: dpopKey.publicJwk } }
  const { authorizationRequestUrl, pkce, dpop: dpopAfterPar } = await vci.createAuthorizationRequestUrlFromOffer({
    clientId: CLIENT_ID,
    credentialOffer: offer,
    issuerMetadata,
    scope: configuration.scope,
    redirectUri: REDIRECT_URI,
    dpop,
  })
  const location = await logIn(authorizationRequestUrl, resident)
  const answer = vci.parseAndVerifyAuthorizationResponseRedirectUrl({
    url: location,
    authorizationServerMetadata: issuerMetadata.authorizationServers[0],
  })
  if (answer.error) throw new Error(`${answer.error}: ${answer.error_description}`)
  const token = await vci.retrieveAuthorizationCodeAccessTokenFromOffer({
    credentialOffer: offer,
    issuerMetadata,
    authorizationCode: answer.code,
    pkceCodeVerifier: pkce.codeVerifier,
    redirectUri: REDIRECT_URI,
    dpop: dpopAfterPar ?? dpop,
  })
  return credentialFor(vci, issuerMetadata, offer, token)
}

// --- OpenID4VP ------------------------------------------------------------------------------
// The verifier's request object is checked by these callbacks: the x5c chain to the CA
// the test trusts (node:crypto's X509Certificate), then the signature by the leaf's key.
function verifierCallbacks(caPem) {
  const ca = new crypto.X509Certificate(fs.readFileSync(caPem))
  const b64ToPem = (b64) => `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`
  return {
    ...callbacks,
    verifyJwt: async (signer, { compact }) => {
      if (signer.method !== 'x5c') return { verified: false }
      const leaf = new crypto.X509Certificate(b64ToPem(signer.x5c[0]))
      const now = new Date()
      const inWindow = (c) => new Date(c.validFrom) <= now && now <= new Date(c.validTo)
      if (!leaf.checkIssued(ca) || !leaf.verify(ca.publicKey) || !inWindow(leaf) || !inWindow(ca)) {
        return { verified: false }
      }
      try {
        await jose.compactVerify(compact, leaf.publicKey)
      } catch {
        return { verified: false }
      }
      return { verified: true, signerJwk: leaf.publicKey.export({ format: 'jwk' }) }
    },
    getX509CertificateMetadata: (certificate) => {
      const names = (new crypto.X509Certificate(b64ToPem(certificate)).subjectAltName ?? '').split(', ')
      return {
        sanDnsNames: names.filter((n) => n.startsWith('DNS:')).map((n) => n.slice(4)),
        sanUriNames: names.filter((n) => n.startsWith('URI:')).map((n) => n.slice(4)),
      }
    },
    // section 8.3: the JWE header carries the verifier key's kid
    encryptJwe: async (encryptor, plaintext) => ({
      encryptionJwk: encryptor.publicJwk,
      jwe: await new jose.CompactEncrypt(new TextEncoder().encode(plaintext))
        .setProtectedHeader({ alg: encryptor.alg, enc: encryptor.enc, ...(encryptor.publicJwk.kid ? { kid: encryptor.publicJwk.kid } : {}) })
        .setKeyManagementParameters({
          ...(encryptor.apu ? { apu: jose.base64url.decode(encryptor.apu) } : {}),
          ...(encryptor.apv ? { apv: jose.base64url.decode(encryptor.apv) } : {}),
        })
        .encrypt(await jose.importJWK(encryptor.publicJwk, encryptor.alg)),
    }),
  }
}

// The libraries have no SD-JWT code: the presentation is made here (RFC 9901 section 4.3),
// disclosing the disclosures whose claim name ends a DCQL claims path.
async function sdJwtPresentation(credential, holderJwk, paths, aud, nonce) {
  const [issuerJwt, ...rest] = credential.split('~')
  const disclosures = rest.filter((d) => d.length > 0)
  const wanted = new Set(paths.map((path) => String(path[path.length - 1])))
  const kept = disclosures.filter((d) => {
    const decoded = JSON.parse(new TextDecoder().decode(jose.base64url.decode(d)))
    return decoded.length === 3 && wanted.has(decoded[1])
  })
  const presented = [issuerJwt, ...kept].join('~') + '~'
  const sdHash = crypto.createHash('sha256').update(presented, 'ascii').digest('base64url')
  const key = await jose.importJWK(holderJwk, 'ES256')
  const kb = await new jose.SignJWT({ iat: Math.floor(Date.now() / 1000), aud, nonce, sd_hash: sdHash })
    .setProtectedHeader({ alg: 'ES256', typ: 'kb+jwt' })
    .sign(key)
  return presented + kb
}

async function present(link, credential, holderJson, caPem) {
  const vp = new Openid4vpClient({ callbacks: verifierCallbacks(caPem) })
  const parsed = vp.parseOpenid4vpAuthorizationRequest({ authorizationRequest: link })
  const resolved = await vp.resolveOpenId4vpAuthorizationRequest({
    authorizationRequestPayload: parsed.params,
    wallet: {
      metadata: {
        vp_formats_supported: { 'dc+sd-jwt': { 'sd-jwt_alg_values': ['ES256'], 'kb-jwt_alg_values': ['ES256'] } },
        authorization_encryption_alg_values_supported: ['ECDH-ES'],
        authorization_encryption_enc_values_supported: ['A256GCM', 'A128GCM'],
      },
    },
  })
  if (resolved.client.prefix !== 'x509_hash') throw new Error(`unexpected client prefix ${resolved.client.prefix}`)
  const request = resolved.authorizationRequestPayload
  const [query] = resolved.dcql.query.credentials
  const presentation = await sdJwtPresentation(
    credential, JSON.parse(holderJson), query.claims.map((c) => c.path), resolved.client.effective, request.nonce,
  )
  const encrypted = request.response_mode === 'direct_post.jwt'
  const created = await vp.createOpenid4vpAuthorizationResponse({
    authorizationRequestPayload: request,
    authorizationResponsePayload: { vp_token: { [query.id]: [presentation] } },
    ...(encrypted
      ? {
          jarm: {
            encryption: { nonce: jose.base64url.encode(crypto.randomBytes(16)) },
            serverMetadata: {
              authorization_signing_alg_values_supported: [],
              authorization_encryption_alg_values_supported: ['ECDH-ES'],
              authorization_encryption_enc_values_supported: ['A256GCM', 'A128GCM'],
            },
          },
        }
      : {}),
  })
  const submitted = await vp.submitOpenid4vpAuthorizationResponse({
    authorizationRequestPayload: request,
    authorizationResponsePayload: created.authorizationResponsePayload,
    ...(created.jarm ? { jarm: { responseJwt: created.jarm.responseJwt } } : {}),
  })
  return {
    status: submitted.response.status,
    body: await submitted.response.text(),
    client_id: resolved.client.effective,
    version: resolved.version,
    claims: query.claims.map((c) => c.path),
    mode: request.response_mode,
  }
}

// --- main ------------------------------------------------------------------------------------
const [command, ...args] = process.argv.slice(2)
const commands = {
  'pre-authorized': () => preAuthorized(args[0], args[1]),
  'authorization-code': () => authorizationCode(args[0], args[1]),
  present: () => present(args[0], args[1], args[2], args[3]),
}
try {
  if (!commands[command]) throw new Error(`unknown command ${command}`)
  process.stdout.write(JSON.stringify(await commands[command]()) + '\n')
} catch (error) {
  const detail = error.errorResponse ?? error.response?.status ?? error.cause?.message
  process.stdout.write(JSON.stringify({ error: String(error.message ?? error), detail: detail ?? null }) + '\n')
  process.exit(1)
}
