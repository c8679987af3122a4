"""Loopback mock of a ccx node as OID4VCI issuer + AS + OID4VP verifier, to probe @openid4vc 0.4.6 and openvc-core.
Not project code: research probe only."""
import base64, hashlib, json, os, secrets, ssl, sys, threading, time, urllib.parse, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from openvc.keys import P256SigningKey, P256KeyAgreementKey
from openvc.proof.sd_jwt import SdJwtVcProofSuite
from openvc import verify_vp_token
from openvc.jwe import decrypt_compact
from openvc.openid4vci import parse_credential_offer, parse_credential_issuer_metadata, verify_credential_request_proofs
from openvc.resolvers import default_status_list_token_resolver
from openvc.status.token_status_list import new_status_list, set_status
from openvc.status.issue import build_status_list_token

PORT = int(sys.argv[1]); SCHEME = sys.argv[2] if len(sys.argv) > 2 else "https"
ISS = f"{SCHEME}://localhost:{PORT}"
LOG = []
def log(kind, **kw): LOG.append({"kind": kind, **kw}); json.dump(LOG, open("mock-log.json", "w"), indent=1)
b64u = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
def b64u_json(seg): return json.loads(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4)))

def load_key(p): return serialization.load_pem_private_key(open(p, "rb").read(), None)
def load_cert(p): return x509.load_pem_x509_certificate(open(p, "rb").read())
def es256(key, header, payload):
    si = b64u(json.dumps(header).encode()) + "." + b64u(json.dumps(payload).encode())
    r, s = decode_dss_signature(key.sign(si.encode(), ec.ECDSA(hashes.SHA256())))
    return si + "." + b64u(r.to_bytes(32, "big") + s.to_bytes(32, "big"))

issuer_key = P256SigningKey(load_key("issuer.key.pem"), kid="issuer-key-1")
issuer_jwk = dict(issuer_key.public_jwk(), kid="issuer-key-1")
ver_key = load_key("verifier.key.pem"); ver_der = load_cert("verifier.pem").public_bytes(serialization.Encoding.DER)
CLIENT_ID = "x509_hash:" + b64u(hashlib.sha256(ver_der).digest())
CA_CTX = ssl.create_default_context(cafile="ca.pem")
def fetch_json(url): return json.load(urllib.request.urlopen(url, context=CA_CTX if url.startswith("https") else None))
def fetch_text(url): return urllib.request.urlopen(url, context=CA_CTX if url.startswith("https") else None).read().decode()

CONFIG_ID = "ccx_credit_standing"
META = {
  "credential_issuer": ISS, "credential_endpoint": ISS + "/credential", "nonce_endpoint": ISS + "/nonce",
  "display": [{"name": "Test city node", "locale": "en"}],
  "credential_configurations_supported": {CONFIG_ID: {
     "format": "dc+sd-jwt", "vct": "urn:ccx:credit-standing:1", "scope": CONFIG_ID,
     "cryptographic_binding_methods_supported": ["jwk"], "credential_signing_alg_values_supported": ["ES256"],
     "proof_types_supported": {"jwt": {"proof_signing_alg_values_supported": ["ES256"]}},
     "credential_metadata": {"display": [{"name": "Credit standing", "locale": "en"}],
                             "claims": [{"path": ["band"], "display": [{"name": "Band", "locale": "en"}]}, {"path": ["alliance_score"]}]}}}}
AS_META = {"issuer": ISS, "token_endpoint": ISS + "/token", "authorization_endpoint": ISS + "/authorize",
  "pushed_authorization_request_endpoint": ISS + "/par", "require_pushed_authorization_requests": True,
  "code_challenge_methods_supported": ["S256"], "dpop_signing_alg_values_supported": ["ES256"],
  "grant_types_supported": ["authorization_code", "urn:ietf:params:oauth:grant-type:pre-authorized_code"],
  "pre-authorized_grant_anonymous_access_supported": True, "response_types_supported": ["code"],
  "token_endpoint_auth_methods_supported": ["none"], "authorization_response_iss_parameter_supported": True,
  "scopes_supported": [CONFIG_ID]}
STATE = {"pre_code": secrets.token_urlsafe(16), "tx_code": "493536", "nonces": set(), "par": {}, "codes": {},
         "dpop_nonce": secrets.token_urlsafe(8), "vp": {}}
SL_URI = ISS + "/status-lists/1"
sl = new_status_list(1 << 17, bits=1); set_status(sl, 7, 1, bits=1)

class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def send(self, code, body, ctype="application/json", headers=()):
        raw = body if isinstance(body, bytes) else (body.encode() if isinstance(body, str) else json.dumps(body).encode())
        self.send_response(code); self.send_header("Content-Type", ctype); self.send_header("Content-Length", str(len(raw)))
        self.send_header("Cache-Control", "no-store")
        for k, v in headers: self.send_header(k, v)
        self.end_headers(); self.wfile.write(raw)
    def body(self):
        n = int(self.headers.get("Content-Length") or 0); return self.rfile.read(n).decode()
    def do_GET(self):
        p = urllib.parse.urlsplit(self.path); log("GET", path=self.path, accept=self.headers.get("Accept"))
        if p.path == "/.well-known/openid-credential-issuer": return self.send(200, META)
        if p.path == "/.well-known/oauth-authorization-server": return self.send(200, AS_META)
        if p.path == "/.well-known/jwt-vc-issuer": return self.send(200, {"issuer": ISS, "jwks": {"keys": [issuer_jwk]}})
        if p.path == "/offer/pre": return self.send(200, {"credential_issuer": ISS, "credential_configuration_ids": [CONFIG_ID],
            "grants": {"urn:ietf:params:oauth:grant-type:pre-authorized_code": {"pre-authorized_code": STATE["pre_code"],
                       "tx_code": {"input_mode": "numeric", "length": 6, "description": "Code from the counter"}}}})
        if p.path == "/offer/authz": return self.send(200, {"credential_issuer": ISS, "credential_configuration_ids": [CONFIG_ID],
            "grants": {"authorization_code": {"issuer_state": "st-" + secrets.token_urlsafe(8)}}})
        if p.path == "/authorize":
            q = dict(urllib.parse.parse_qsl(p.query)); par = STATE["par"].get(q.get("request_uri"))
            log("authorize", query=q, par_found=bool(par))
            if not par or par["client_id"] != q.get("client_id"): return self.send(400, {"error": "invalid_request"})
            code = secrets.token_urlsafe(16); STATE["codes"][code] = par
            loc = par["redirect_uri"] + "?" + urllib.parse.urlencode({"code": code, "iss": ISS, **({"state": par["state"]} if par.get("state") else {})})
            self.send_response(302); self.send_header("Location", loc); self.send_header("Content-Length", "0"); self.end_headers(); return
        if p.path == "/status-lists/1":
            tok = build_status_list_token(signing_key=issuer_key, uri=SL_URI, status_list=sl, bits=1, expires=int(time.time()) + 3600, ttl=300, issuer=ISS)
            return self.send(200, tok, "application/statuslist+jwt")
        if p.path == "/vp/request.jwt": return self.request_object(dict(urllib.parse.parse_qsl(p.query)), {})
        return self.send(404, {"error": "not_found"})
    def request_object(self, q, posted):
        st = q.get("state"); s = STATE["vp"].get(st)
        if not s: return self.send(404, {"error": "not_found"})
        now = int(time.time())
        claims = {"iss": CLIENT_ID, "aud": "https://self-issued.me/v2", "client_id": CLIENT_ID, "response_type": "vp_token",
                  "response_mode": s["mode"], "response_uri": ISS + "/vp/response", "nonce": s["nonce"], "state": st, "iat": now, "exp": now + 300,
                  "dcql_query": s["dcql"],
                  "client_metadata": {"jwks": {"keys": [dict(s["enc"].public_jwk(), kid=s["enc"].kid, alg="ECDH-ES")]},
                                      "vp_formats_supported": {"dc+sd-jwt": {"sd-jwt_alg_values": ["ES256"], "kb-jwt_alg_values": ["ES256", "EdDSA"]}},
                                      "encrypted_response_enc_values_supported": ["A128GCM", "A256GCM"]}}
        if posted.get("wallet_nonce"): claims["wallet_nonce"] = posted["wallet_nonce"]
        jar = es256(ver_key, {"alg": "ES256", "typ": "oauth-authz-req+jwt", "x5c": [base64.b64encode(ver_der).decode()]}, claims)
        return self.send(200, jar, "application/oauth-authz-req+jwt")
    def do_POST(self):
        p = urllib.parse.urlsplit(self.path); raw = self.body()
        form = dict(urllib.parse.parse_qsl(raw)) if "x-www-form-urlencoded" in (self.headers.get("Content-Type") or "") else None
        hdr = {k: v for k, v in self.headers.items() if k.lower() in ("dpop", "authorization", "content-type", "accept", "oauth-client-attestation")}
        log("POST", path=self.path, headers=hdr, form=form, json=(json.loads(raw) if raw and form is None and raw[:1] == "{" else None))
        if p.path == "/nonce":
            n = secrets.token_urlsafe(16); STATE["nonces"].add(n)
            return self.send(200, {"c_nonce": n}, headers=[("DPoP-Nonce", STATE["dpop_nonce"])])
        if p.path == "/par":
            if not self.headers.get("DPoP"): return self.send(400, {"error": "invalid_dpop_proof"})
            uri = "urn:ietf:params:oauth:request_uri:" + secrets.token_urlsafe(16); STATE["par"][uri] = form
            return self.send(201, {"request_uri": uri, "expires_in": 60})
        if p.path == "/token":
            dpop = self.headers.get("DPoP"); payload = b64u_json(dpop.split(".")[1]) if dpop else {}
            if payload.get("nonce") != STATE["dpop_nonce"]:
                return self.send(400, {"error": "use_dpop_nonce", "error_description": "use the DPoP nonce"}, headers=[("DPoP-Nonce", STATE["dpop_nonce"])])
            gt = form.get("grant_type")
            if gt == "urn:ietf:params:oauth:grant-type:pre-authorized_code":
                if form.get("pre-authorized_code") != STATE["pre_code"]: return self.send(400, {"error": "invalid_grant"})
                if form.get("tx_code") != STATE["tx_code"]: return self.send(400, {"error": "invalid_grant"})
            elif gt == "authorization_code":
                par = STATE["codes"].pop(form.get("code"), None)
                if not par: return self.send(400, {"error": "invalid_grant"})
                want = b64u(hashlib.sha256(form.get("code_verifier", "").encode()).digest())
                if want != par.get("code_challenge") or form.get("redirect_uri") != par.get("redirect_uri"): return self.send(400, {"error": "invalid_grant"})
            else: return self.send(400, {"error": "unsupported_grant_type"})
            jkt_src = b64u_json(dpop.split(".")[0])["jwk"]
            return self.send(200, {"access_token": "at-" + secrets.token_urlsafe(16), "token_type": "DPoP", "expires_in": 300},
                             headers=[("DPoP-Nonce", STATE["dpop_nonce"])])
        if p.path == "/credential":
            auth = self.headers.get("Authorization", "")
            if not auth.startswith("DPoP ") or not self.headers.get("DPoP"): return self.send(401, {"error": "invalid_token"}, headers=[("WWW-Authenticate", 'DPoP error="invalid_token"')])
            req = json.loads(raw)
            def consume(n):
                if n in STATE["nonces"]: STATE["nonces"].discard(n); return True
                return False
            try:
                proofs = verify_credential_request_proofs(req, credential_issuer=ISS, check_nonce=consume)
            except Exception as e:
                log("proof_error", err=repr(e)); return self.send(400, {"error": "invalid_proof", "error_description": type(e).__name__})
            holder = proofs[0].public_jwk
            cred = SdJwtVcProofSuite().issue({"iss": ISS, "band": "good", "alliance_score": 702,
                    "status": {"status_list": {"idx": 3, "uri": SL_URI}}}, signing_key=issuer_key,
                    disclosable=["band", "alliance_score"], holder_jwk=holder, vct="urn:ccx:credit-standing:1", expires_in_s=3600, decoys=2)
            log("issued", holder=holder)
            return self.send(200, {"credentials": [{"credential": cred}]})
        if p.path == "/vp/start":
            st = secrets.token_urlsafe(16); mode = (json.loads(raw) if raw else {}).get("mode", "direct_post.jwt")
            dcql = {"credentials": [{"id": "standing", "format": "dc+sd-jwt", "meta": {"vct_values": ["urn:ccx:credit-standing:1"]},
                                     "claims": [{"path": ["band"]}]}]}
            STATE["vp"][st] = {"nonce": secrets.token_urlsafe(16), "mode": mode, "dcql": dcql, "enc": P256KeyAgreementKey(ec.generate_private_key(ec.SECP256R1()), kid="enc-" + st[:8])}
            url = "openid4vp://?" + urllib.parse.urlencode({"client_id": CLIENT_ID, "request_uri": ISS + "/vp/request.jwt?state=" + st, "request_uri_method": "post"})
            return self.send(200, {"request": url})
        if p.path == "/vp/request.jwt": return self.request_object(dict(urllib.parse.parse_qsl(p.query)), form or {})
        if p.path == "/vp/response":
            if "response" in form:
                s = None
                for st, cand in STATE["vp"].items():
                    try: body = json.loads(decrypt_compact(form["response"], key=cand["enc"])); s = cand; break
                    except Exception: continue
                if s is None: return self.send(400, {"error": "invalid_request"})
                log("jwe_header", header=b64u_json(form["response"].split(".")[0]))
            else:
                body = {"vp_token": json.loads(form["vp_token"]), "state": form.get("state")}; s = STATE["vp"][form["state"]]
            log("vp_body", body=body)
            resolver = default_status_list_token_resolver(jwt_vc_issuer_fetch=fetch_json, fetch=fetch_text)
            try:
                res = verify_vp_token(body["vp_token"], dcql_query=s["dcql"], nonce=s["nonce"], client_id=CLIENT_ID,
                                      jwt_vc_issuer_fetch=fetch_json, resolve_status_list_token=resolver, require_status=True)
                pres = res.presentations[0]; cr = pres.credentials[0]
                log("openvc_verify_vp_token", ok=True, claims=cr.credential, status=repr(cr.status), key_bound=cr.key_bound)
            except Exception as e:
                log("openvc_verify_vp_token", ok=False, err=repr(e))
            return self.send(200, {"redirect_uri": ISS + "/vp/done#response_code=" + secrets.token_urlsafe(16)})
        return self.send(404, {"error": "not_found"})

# openvc parsers on our docs
for f, doc in (("parse_credential_issuer_metadata", META),):
    try: parse_credential_issuer_metadata(doc); log("openvc_parse", fn=f, ok=True)
    except Exception as e: log("openvc_parse", fn=f, ok=False, err=repr(e))
try: parse_credential_offer({"credential_issuer": ISS, "credential_configuration_ids": [CONFIG_ID], "grants": {}}); log("openvc_parse", fn="parse_credential_offer", ok=True)
except Exception as e: log("openvc_parse", fn="parse_credential_offer", ok=False, err=repr(e))

srv = ThreadingHTTPServer(("127.0.0.1", PORT), H)
if SCHEME == "https":
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain("tls.pem", "tls.key.pem"); srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("listening", ISS, CLIENT_ID, flush=True); srv.serve_forever()
