"""Probe: a Python 'ccx wallet' (hand-written JWE + KB-JWT) presenting to polaris-oid4vp 1.0.0 on plain-HTTP loopback."""
import base64, hashlib, json, secrets, socket, struct, time, urllib.parse, urllib.request
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash
from openvc.keys import P256SigningKey
from openvc.proof.sd_jwt import SdJwtVcProofSuite
from polaris_oid4vp.verifier import Verifier
from polaris_oid4vp.serve import serve

b64u = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
unb64u = lambda s: base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
base = f"http://127.0.0.1:{port}"
issuer = P256SigningKey(ec.generate_private_key(ec.SECP256R1()), kid="k1")
verifier = Verifier(client_cert_pem=open("verifier.pem", "rb").read(), client_key_pem=open("verifier.key.pem", "rb").read(),
                    request_uri=base + "/request.jwt", response_uri=base + "/response",
                    issuer_jwks=[dict(issuer.public_jwk(), kid="k1")],
                    vct_values=("urn:ccx:credit-standing:1",), claims=(["score_at_least_650"],))
verdicts = []
httpd = serve(verifier, host="127.0.0.1", port=port, on_verdict=lambda st, body, v: verdicts.append((st, body, v)))

holder_sk = ec.generate_private_key(ec.SECP256R1()); hn = holder_sk.public_key().public_numbers()
holder_jwk = {"kty": "EC", "crv": "P-256", "x": b64u(hn.x.to_bytes(32, "big")), "y": b64u(hn.y.to_bytes(32, "big"))}
cred = SdJwtVcProofSuite().issue({"iss": "https://fuzhou.example", "band": "good", "score_at_least_650": True},
                                 signing_key=issuer, disclosable=["band", "score_at_least_650"], holder_jwk=holder_jwk,
                                 vct="urn:ccx:credit-standing:1", expires_in_s=3600)

session, _ = verifier.new_request()
params = verifier.authorization_request_params(session)          # client_id, request_uri, request_uri_method=post
print("authorization request:", "openid4vp://?" + urllib.parse.urlencode(params)[:120], "...")
wallet_nonce = secrets.token_urlsafe(16)
req = urllib.request.Request(params["request_uri"], data=urllib.parse.urlencode({"wallet_nonce": wallet_nonce}).encode(),
                             headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/oauth-authz-req+jwt"})
r = urllib.request.urlopen(req); jar = r.read().decode(); print("request_uri:", r.status, r.headers["Content-Type"])
h, p, sig = jar.split("."); hdr = json.loads(unb64u(h)); ro = json.loads(unb64u(p))
leaf = x509.load_der_x509_certificate(base64.b64decode(hdr["x5c"][0]))
assert ro["client_id"] == params["client_id"] == "x509_hash:" + b64u(hashlib.sha256(base64.b64decode(hdr["x5c"][0])).digest())
rs = unb64u(sig); from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
leaf.public_key().verify(encode_dss_signature(int.from_bytes(rs[:32], "big"), int.from_bytes(rs[32:], "big")), (h + "." + p).encode(), ec.ECDSA(hashes.SHA256()))
print("request object: typ", hdr["typ"], "| wallet_nonce echoed:", ro.get("wallet_nonce") == wallet_nonce, "| mode", ro["response_mode"],
      "| dcql", json.dumps(ro["dcql_query"]), "| client_metadata keys", sorted(ro["client_metadata"]))

# presentation: disclose exactly what the DCQL asks for; KB-JWT aud = full client_id
want = [c["path"][0] for c in ro["dcql_query"]["credentials"][0]["claims"]]
issuer_jwt, *discl = cred.split("~"); discl = [d for d in discl if d and json.loads(unb64u(d))[1] in want]
presented = "~".join([issuer_jwt, *discl]) + "~"
kb_h = {"alg": "ES256", "typ": "kb+jwt"}; kb_p = {"iat": int(time.time()), "aud": ro["client_id"], "nonce": ro["nonce"],
        "sd_hash": b64u(hashlib.sha256(presented.encode()).digest())}
si = b64u(json.dumps(kb_h).encode()) + "." + b64u(json.dumps(kb_p).encode())
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
r_, s_ = decode_dss_signature(holder_sk.sign(si.encode(), ec.ECDSA(hashes.SHA256())))
presentation = presented + si + "." + b64u(r_.to_bytes(32, "big") + s_.to_bytes(32, "big"))

# JWE ECDH-ES + A256GCM to client_metadata.jwks key (kid echoed), apu/apv absent
jwk = ro["client_metadata"]["jwks"]["keys"][0]; enc = "A256GCM"
peer = ec.EllipticCurvePublicNumbers(int.from_bytes(unb64u(jwk["x"]), "big"), int.from_bytes(unb64u(jwk["y"]), "big"), ec.SECP256R1()).public_key()
eph = ec.generate_private_key(ec.SECP256R1()); en = eph.public_key().public_numbers()
z = eph.exchange(ec.ECDH(), peer)
otherinfo = struct.pack(">I", len(enc)) + enc.encode() + struct.pack(">I", 0) + struct.pack(">I", 0) + struct.pack(">I", 256)
cek = ConcatKDFHash(hashes.SHA256(), 32, otherinfo).derive(z)
jh = {"alg": "ECDH-ES", "enc": enc, "kid": jwk["kid"], "epk": {"kty": "EC", "crv": "P-256", "x": b64u(en.x.to_bytes(32, "big")), "y": b64u(en.y.to_bytes(32, "big"))}}
ph = b64u(json.dumps(jh).encode()); iv = secrets.token_bytes(12)
ct = AESGCM(cek).encrypt(iv, json.dumps({"vp_token": {ro["dcql_query"]["credentials"][0]["id"]: [presentation]}, "state": ro["state"]}).encode(), ph.encode())
jwe = ".".join([ph, "", b64u(iv), b64u(ct[:-16]), b64u(ct[-16:])])
r = urllib.request.urlopen(urllib.request.Request(ro["response_uri"], data=urllib.parse.urlencode({"response": jwe}).encode(),
                           headers={"Content-Type": "application/x-www-form-urlencoded"}))
print("response_uri:", r.status, r.read().decode())
st, body, v = verdicts[-1]; print("polaris verdict: authentic", v.authentic, "code", v.code, "claims", v.claims, "revocation", v.revocation["state"])
httpd.shutdown(); httpd.server_close()
