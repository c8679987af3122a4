import json, base64, urllib.request
from openvc import verify_vp_token
from openvc.did.base import DidDocument, VerificationMethod, DidResolutionError
from openvc.resolvers import default_status_list_token_resolver
L = json.load(open("mock-log.json"))
body = [e for e in L if e["kind"] == "vp_body"][-1]["body"]
pres = body["vp_token"]["standing"][0]
kb = json.loads(base64.urlsafe_b64decode(pres.rsplit("~", 1)[1].split(".")[1] + "=="))
ISS = "http://localhost:8444"
jwks = json.load(urllib.request.urlopen(ISS + "/.well-known/jwt-vc-issuer"))["jwks"]["keys"]   # in ccx: from the alliance registry

class RegistryResolver:             # duck-typed openvc DID resolver for a non-DID, non-https iss
    def resolve(self, iss):
        if iss != ISS: raise DidResolutionError(f"not an alliance member: {iss}")
        return DidDocument(id=iss, raw={}, verification_methods=[
            VerificationMethod(id=f"{iss}#{k['kid']}", type="JsonWebKey", controller=iss, public_key_jwk=k) for k in jwks])
fetch_text = lambda u: urllib.request.urlopen(u).read().decode()
res = verify_vp_token(body["vp_token"], dcql_query={"credentials": [{"id": "standing", "format": "dc+sd-jwt",
        "meta": {"vct_values": ["urn:ccx:credit-standing:1"]}, "claims": [{"path": ["band"]}]}]},
    nonce=kb["nonce"], client_id=kb["aud"], resolver=RegistryResolver(),
    resolve_status_list_token=default_status_list_token_resolver(resolver=RegistryResolver(), fetch=fetch_text), require_status=True)
c = res.presentations[0].credentials[0]
print("ok", c.issuer, c.credential.get("band"), c.status, c.key_bound)
