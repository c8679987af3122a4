// What the web wallet keeps, in this browser's IndexedDB: the holder key (a
// non-extractable P-256 CryptoKey: the page can sign with it but no script can read it
// out) and the credentials. Nothing leaves the browser but presentations the resident
// agrees to.

import { P256, publicJwk, thumbprint } from "./jose.js";

const DB = "ccx-wallet";
const VERSION = 1;

function open() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB, VERSION);
    request.onupgradeneeded = () => {
      const db = request.result;
      db.createObjectStore("keys");
      db.createObjectStore("credentials", { keyPath: "id" });
    };
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function run(storeName, mode, work) {
  const db = await open();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(storeName, mode);
      const request = work(tx.objectStore(storeName));
      tx.oncomplete = () => resolve(request ? request.result : undefined);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}

/** The holder key, made on first use: {privateKey, publicKey, publicJwk, thumbprint}. */
export async function holderKey() {
  const held = await run("keys", "readonly", (store) => store.get("holder"));
  if (held) return { ...held, created: false };
  const pair = await crypto.subtle.generateKey(P256, false, ["sign", "verify"]);
  const jwk = await publicJwk(pair.publicKey);
  const entry = {
    privateKey: pair.privateKey, publicKey: pair.publicKey, publicJwk: jwk,
    thumbprint: await thumbprint(jwk), createdAt: Math.floor(Date.now() / 1000),
  };
  await run("keys", "readwrite", (store) => store.put(entry, "holder"));
  return { ...entry, created: true };
}

export async function credentials() {
  const all = await run("credentials", "readonly", (store) => store.getAll());
  return all.sort((a, b) => b.receivedAt - a.receivedAt);
}

export async function addCredential(entry) {
  await run("credentials", "readwrite", (store) => store.put(entry));
}

export async function removeCredential(id) {
  await run("credentials", "readwrite", (store) => store.delete(id));
}
