// Building the page: elements are made with their text as text, never parsed as HTML, so
// nothing a customer wrote can run here. And the two ways the console speaks to the agent.
import { t } from "/console/i18n.js";

function append(node, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// `el("a", { href, onclick, text }, ...children)`: attributes, listeners (on*), children.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  return append(node, children);
}

const SVG = "http://www.w3.org/2000/svg";

export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) node.setAttribute(key, value);
  }
  return append(node, children);
}

// A label that names its control: visible text, read out with the control.
export function field(key, control) {
  return el("label", { class: "field" }, el("span", {}, t(key)), control);
}

// `<option>`s from [value, label] pairs, the current value selected.
export function options(values, current) {
  return values.map(([value, label]) => el("option", { value, selected: String(value) === String(current ?? "") },
    label));
}

// What the agent just did (saved, failed): shown and spoken. Errors say so in words too.
let toastTimer = null;
export function toast(message, error = false) {
  const box = document.getElementById("toast");
  box.textContent = error ? `${t("error")}: ${message}` : message;
  box.classList.toggle("error", error);
  box.classList.add("show");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => box.classList.remove("show"), error ? 6000 : 2500);
}

// What arrived live (new tickets, new breaches): spoken by screen readers, not shown.
export function announce(message) {
  const box = document.getElementById("announce");
  box.textContent = "";
  setTimeout(() => { box.textContent = message; }, 50);
}
