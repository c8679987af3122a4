// Chinese and English for the web wallet (a copy of node/web/common/i18n.js: the wallet
// must work on any static host, without the node's /common/). A page passes its messages,
// {zh: {key: text}, en: {key: text}}; elements with data-i18n="key" get the text (as
// textContent, never HTML), data-i18n-placeholder / data-i18n-label their attribute.
// The choice is remembered in localStorage; the first visit follows the browser.

const KEY = "ccx-lang";
let messages = { zh: {}, en: {} };
let current = "zh";
const listeners = [];

export function initialLanguage() {
  const saved = globalThis.localStorage?.getItem(KEY);
  if (saved === "zh" || saved === "en") return saved;
  const query = new URLSearchParams(location.search).get("lang");
  if (query === "zh" || query === "en") return query;
  return (navigator.language || "zh").toLowerCase().startsWith("zh") ? "zh" : "en";
}

export function lang() {
  return current;
}

/** The message `key` in the current language, `{name}` replaced from `vars`. */
export function t(key, vars = {}) {
  const text = messages[current][key] ?? messages.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ""));
}

export function apply(root = document) {
  document.documentElement.lang = current === "zh" ? "zh-CN" : "en";
  for (const element of root.querySelectorAll("[data-i18n]")) {
    element.textContent = t(element.dataset.i18n);
  }
  for (const element of root.querySelectorAll("[data-i18n-placeholder]")) {
    element.placeholder = t(element.dataset.i18nPlaceholder);
  }
  for (const element of root.querySelectorAll("[data-i18n-label]")) {
    element.setAttribute("aria-label", t(element.dataset.i18nLabel));
  }
  const toggle = document.getElementById("lang");
  if (toggle) toggle.textContent = current === "zh" ? "English" : "中文";
  if (messages[current].title) document.title = messages[current].title;
}

export function setLanguage(choice) {
  current = choice;
  globalThis.localStorage?.setItem(KEY, choice);
  apply();
  for (const listener of listeners) listener(choice);
}

/** Install the page's messages and the #lang button; `onChange` re-renders what the
 * page's script wrote itself. */
export function init(pageMessages, onChange) {
  messages = pageMessages;
  current = initialLanguage();
  if (onChange) listeners.push(onChange);
  document.getElementById("lang")?.addEventListener("click", () => {
    setLanguage(current === "zh" ? "en" : "zh");
  });
  apply();
}

/** An element with text children: el("td", {className: "x"}, "text", otherElement). */
export function el(tag, props = {}, ...children) {
  const element = Object.assign(document.createElement(tag), props);
  for (const child of children) {
    if (child === null || child === undefined) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}
