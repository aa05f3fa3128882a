// @ts-check
/**
 * DOM helpers for the review page. User-provided strings only ever become
 * text nodes (`textContent`), never markup.
 */

/**
 * @param {string} tag
 * @param {Record<string, any>} [attrs] properties (`on*` become listeners, `dataset` / `aria`-style keys attributes)
 * @param {...(Node | string | number | null | undefined | false)} children
 * @returns {any}
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') node.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else if (k === 'class') node.className = String(v);
    else if (k.includes('-') || k === 'role' || k === 'for') node.setAttribute(k, String(v));
    else /** @type {any} */ (node)[k] = v;
  }
  append(node, ...children);
  return node;
}

/** @param {Node} node @param {...(Node | string | number | null | undefined | false)} children */
export function append(node, ...children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    node.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c)));
  }
}

/** @param {Element} node @param {...(Node | string | number | null | undefined | false)} children */
export function replace(node, ...children) {
  node.replaceChildren();
  append(node, ...children);
}

/** A video position as `mm:ss`. @param {number | null | undefined} seconds */
export function mmss(seconds) {
  if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.floor(seconds);
  return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}
