"""Do openvc-core 1.37.0 and polaris-oid4vp 1.0.0 accept REAL ccx attestations (protocol/ copied from /work/main)?"""
import sys, json, time, threading, hashlib, urllib.request
sys.path.insert(0, "/tmp/research-14/ccxcopy")
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
import protocol as P
from protocol._attestation import issue_attestation, present
from protocol._status_list import StatusList, sign_status_list
from openvc import verify_vp_token
from openvc.did.base import DidDocument, VerificationMethod, DidResolutionError
from openvc.resolvers import default_status_list_token_resolver
from polaris_oid4vp.sdjwt import verify_presentation

now = int(time.time())
srv_tokens = {}
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        raw = srv_tokens[self.path].encode(); self.send_response(200); self.send_header("Content-Type", "application/statuslist+jwt")
        self.send_header("Content-Length", str(len(raw))); self.end_headers(); self.wfile.write(raw)
httpd = ThreadingHTTPServer(("127.0.0.1", 0), H); port = httpd.server_address[1]
threading.Thread(target=httpd.serve_forever, daemon=True).start()
NODE = f"http://127.0.0.1:{port}"   # a ccx member id (node base URL)
CLIENT_ID = "x509_hash:AAAAexampleexampleexampleexampleexampleexa"

def run(label, issuer_key, with_aud, disclose):
    kid = P.jwk_thumbprint(P.public_jwk(issuer_key.public_key()))
    jwk = dict(P.public_jwk(issuer_key.public_key()), kid=kid)
    sl = StatusList(1 << 17, bits=2); sl.set(42, 0) if hasattr(sl, "set") else None
    uri = NODE + "/v1/status-lists/1"
    srv_tokens["/v1/status-lists/1"] = sign_status_list(sl, uri=uri, issuer=NODE, issuer_key=issuer_key, kid=kid, now=now, exp=now + 3600, ttl=300)
    holder = ec.generate_private_key(ec.SECP256R1())
    claims = {"iss": NODE, "exp": now + 86400, "alliance": "https://alliance.example", "mapping": {"city": "fuzhou", "version": 1, "sha256": "00" * 32},
              "status": {"idx": 42, "uri": uri}, "alliance_score": 702, "band": "good", "thresholds": [550, 600, 650, 700, 750],
              "local_score": 702, "local_scale": {"name": "x", "min": 0, "max": 1000, "step": 1}, "score_date": "2026-11-01"}
    if with_aud: claims["aud"] = [NODE, "http://other.example"]
    att = issue_attestation(claims, issuer_key=issuer_key, kid=kid, holder_jwk=P.public_jwk(holder.public_key()), now=now)
    pres = present(att, disclose=disclose, holder_key=holder, aud=CLIENT_ID, nonce="n-123", now=now)
    class Reg:
        def resolve(self, iss):
            if iss != NODE: raise DidResolutionError("not a member")
            return DidDocument(id=iss, raw={}, verification_methods=[VerificationMethod(id=f"{iss}#{kid}", type="JsonWebKey", controller=iss, public_key_jwk=jwk)])
    paths = [p.split(".") for p in disclose]
    dcql = {"credentials": [{"id": "standing", "format": "dc+sd-jwt", "meta": {"vct_values": [P.VCT]}, "claims": [{"path": p} for p in paths]}]}
    try:
        r = verify_vp_token({"standing": [pres]}, dcql_query=dcql, nonce="n-123", client_id=CLIENT_ID, resolver=Reg(),
                            resolve_status_list_token=default_status_list_token_resolver(resolver=Reg(), fetch=lambda u: urllib.request.urlopen(u).read().decode()),
                            require_status=True)
        c = r.presentations[0].credentials[0]; ov = f"OK disclosed={ {k: c.credential[k] for k in c.credential if k in ('band','score_at_least','alliance_score')} } status={c.status.status}"
    except Exception as e: ov = "FAIL " + repr(e)[:160]
    v = verify_presentation(pres, expected_nonce="n-123", expected_audience=CLIENT_ID, issuer_jwks=[jwk], expected_vct=P.VCT)
    pv = f"authentic={v.authentic} code={v.code!r} disclosed={getattr(v,'disclosed',None)} reason={(v.reason or '')[:120]}"
    print(f"[{label}]\n  openvc:  {ov}\n  polaris: {pv}")

run("ES256, no aud, score_at_least.650", ec.generate_private_key(ec.SECP256R1()), False, ["score_at_least.650"])
run("ES256, no aud, band", ec.generate_private_key(ec.SECP256R1()), False, ["band"])
run("ES256, aud=[member ids]", ec.generate_private_key(ec.SECP256R1()), True, ["score_at_least.650"])
run("EdDSA, no aud", ed25519.Ed25519PrivateKey.generate(), False, ["score_at_least.650"])
httpd.shutdown()
