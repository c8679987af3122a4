import base64, time
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from openvc.keys import P256SigningKey
from openvc.proof.sd_jwt import SdJwtVcProofSuite
from openvc import verify_vp_token
from polaris_oid4vp.sdjwt import verify_presentation
ca = x509.load_pem_x509_certificate(open("ca.pem", "rb").read())
leaf = x509.load_pem_x509_certificate(open("issuer.pem", "rb").read())
key = P256SigningKey(serialization.load_pem_private_key(open("issuer.key.pem", "rb").read(), None), kid="k1")
holder = P256SigningKey(ec.generate_private_key(ec.SECP256R1()), kid="h")
s = SdJwtVcProofSuite()
for iss in ("https://localhost:8443", "https://other.example"):
    cred = s.issue({"iss": iss, "band": "good"}, signing_key=key, disclosable=["band"], holder_jwk=holder.public_jwk(),
                   vct="urn:ccx:credit-standing:1", expires_in_s=600, x5c=[base64.b64encode(leaf.public_bytes(serialization.Encoding.DER)).decode()])
    pres = s.create_presentation(cred, holder_key=holder, audience="x509_hash:abc", nonce="n1") if hasattr(s, "create_presentation") else None
    try:
        verify_vp_token({"q": [pres]}, dcql_query={"credentials": [{"id": "q", "format": "dc+sd-jwt", "meta": {"vct_values": ["urn:ccx:credit-standing:1"]}}]},
                        nonce="n1", client_id="x509_hash:abc", x5c_trust_anchors=[ca]); ov = "OK"
    except Exception as e: ov = "FAIL " + repr(e)[:140]
    v = verify_presentation(pres, expected_nonce="n1", expected_audience="x509_hash:abc", trust_anchors=[ca])
    print(iss, "| openvc x5c:", ov, "| polaris x5c:", v.authentic, v.code, (v.reason or "")[:100], "iss_bound", v.iss_bound)
