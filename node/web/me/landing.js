// Where the identity provider's login comes back (POST /me/login, node/routers/residents.py):
// the node checked the ID token's signature, issuer, audience and times; this script checks
// that the login is the one this tab began (state) and that the token was made for it
// (nonce), keeps the token in this tab's sessionStorage only, and opens the resident's page.
const TOKEN = "ccx-me-token";
const LOGIN = "ccx-me-login";

const main = document.getElementById("landing");
const token = main.dataset.idToken;
const state = main.dataset.state;
delete main.dataset.idToken;
const begun = JSON.parse(sessionStorage.getItem(LOGIN) || "null");
sessionStorage.removeItem(LOGIN); // one login, one answer

function nonceOf(jwt) {
  try {
    const part = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part + "=".repeat((4 - (part.length % 4)) % 4))).nonce;
  } catch {
    return undefined;
  }
}

function refuse() {
  const message = document.getElementById("landing-message");
  message.className = "notice bad";
  message.replaceChildren(
    Object.assign(document.createElement("span"), {
      lang: "zh-CN", textContent: "这次登录不是从本页面发起的，或已被使用，请重新登录。",
    }),
    document.createElement("br"),
    Object.assign(document.createElement("span"), {
      lang: "en", textContent: "This login was not begun on this page, or was used already: please log in again.",
    }),
  );
  main.dataset.outcome = "refused";
}

if (!begun || typeof begun.state !== "string" || begun.state !== state || nonceOf(token) !== begun.nonce) {
  refuse();
} else {
  sessionStorage.setItem(TOKEN, token);
  location.replace("/me/");
}
