// Finding the page's elements. A script looks up only elements its template has: one
// that is missing, or of another kind, is a bug in the template or the script, so the
// lookup throws and names the selector rather than handing back null.

/**
 * The first element under `root` (the document by default) that `selector` matches,
 * checked to be a `kind` (an HTMLElement by default).
 * @template {Element} [T=HTMLElement]
 * @param {string} selector
 * @param {new () => T} [kind] e.g. HTMLInputElement
 * @param {ParentNode} [root]
 * @returns {T}
 */
export function $(selector, kind, root = document) {
  const node = root.querySelector(selector);
  const expected = kind ?? HTMLElement;
  if (!(node instanceof expected)) {
    throw new Error(node ? `${selector} is not a ${expected.name}` : `No ${selector} on this page`);
  }
  // Checked just above: without `kind`, T is HTMLElement.
  return /** @type {T} */ (node);
}

// Making the elements a script adds: the console's lists, tables and their buttons.

/**
 * A new element holding `text`, of class `className` if given.
 * @param {string} tag @param {string} [text] @param {string} [className]
 */
export function el(tag, text = "", className = "") {
  const node = document.createElement(tag);
  node.textContent = text;
  if (className) node.className = className;
  return node;
}

/** A new button that submits nothing. @param {string} label @param {string} [className] */
export function button(label, className = "") {
  const node = /** @type {HTMLButtonElement} */ (el("button", label, className));
  node.type = "button";
  return node;
}
