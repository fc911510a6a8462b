// Small SVG bar charts for the dashboard, drawn with the DOM: no library, no CDN, no
// inline styles (the page's CSP forbids them; colours come from app.css classes).

const SVG = "http://www.w3.org/2000/svg";

/**
 * @param {string} tag
 * @param {Record<string, string | number>} attributes
 * @param {string} [text]
 */
function svg(tag, attributes, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

// Charts are drawn at their container's width in CSS pixels, so that their 13 px text
// (app.css, .bars text) is 13 px on a phone too, not a 720-wide drawing shrunk to half.
const DRAWN_WIDTH = 720;  // where the container has no width yet (not laid out)
const MIN_WIDTH = 280;
const LABEL_PX = 60;  // room for one day's label under the columns
const CHAR_PX = 7.5;  // a 13 px character, about (for cutting long row labels)

/** The width to draw at, in CSS pixels. @param {HTMLElement} container */
function widthOf(container) {
  const width = container.clientWidth;
  return width ? Math.max(MIN_WIDTH, Math.round(width)) : DRAWN_WIDTH;
}

/** @type {WeakMap<HTMLElement, ResizeObserver>} each chart's watch on its width */
const watching = new WeakMap();

/**
 * Draw the chart again when its container's width changes (a phone turned, a window
 * resized): its text stays 13 px.
 * @param {HTMLElement} container @param {() => void} draw
 */
function redrawOnResize(container, draw) {
  watching.get(container)?.disconnect();
  let drawnAt = container.clientWidth;
  const observer = new ResizeObserver(() => {
    const now = container.clientWidth;
    if (now && Math.abs(now - drawnAt) >= 2) {
      drawnAt = now;
      draw();
    }
  });
  observer.observe(container);
  watching.set(container, observer);
}

/**
 * Vertical bars, one per item, labelled under (every nth label when crowded) and with
 * the value over each bar that is not zero.
 * @param {HTMLElement} container emptied and filled with the chart
 * @param {{label: string, value: number}[]} items
 * @param {string} title what the chart shows, for screen readers
 */
export function columnChart(container, items, title) {
  const width = widthOf(container), height = 240, top = 20, bottom = 40, left = 8;
  const max = Math.max(1, ...items.map((i) => i.value));
  const slot = (width - left) / Math.max(1, items.length);
  // A label ("05-14") every LABEL_PX at least: 5 across a phone.
  const every = Math.ceil(items.length / Math.max(2, Math.floor(width / LABEL_PX)));
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", class: "bars" });
  chart.append(svg("title", {}, title));
  items.forEach((item, n) => {
    const h = ((height - top - bottom) * item.value) / max;
    const x = left + n * slot;
    const bar = svg("rect", { x: x + slot * 0.15, y: height - bottom - h, width: slot * 0.7,
      height: Math.max(h, 0), class: "bar" });
    bar.append(svg("title", {}, `${item.label}: ${item.value}`));
    chart.append(bar);
    if (item.value > 0) {
      chart.append(svg("text", { x: x + slot / 2, y: height - bottom - h - 4,
        "text-anchor": "middle", class: "value" }, String(item.value)));
    }
    if (n % every === 0) {
      chart.append(svg("text", { x: x + slot / 2, y: height - bottom + 18, "text-anchor": "middle",
        class: "label" }, item.label));
    }
  });
  chart.append(svg("line", { x1: left, x2: width, y1: height - bottom, y2: height - bottom,
    class: "axis" }));
  container.replaceChildren(chart);
  redrawOnResize(container, () => columnChart(container, items, title));
}

/**
 * Horizontal bars, one row per item, the label on the left and the value on the right.
 * @param {HTMLElement} container
 * @param {{label: string, value: number}[]} items
 * @param {string} title
 */
export function barChart(container, items, title) {
  if (!items.length) {
    watching.get(container)?.disconnect();  // nothing to draw again: not the last chart
    const empty = document.createElement("p");
    empty.className = "empty";
    empty.textContent = "No calls in this period.";
    container.replaceChildren(empty);
    return;
  }
  const width = widthOf(container), row = 32, valueWidth = 60;
  const labelWidth = Math.min(260, Math.round(width * 0.42));
  const fits = Math.floor((labelWidth - 8) / CHAR_PX);  // characters a label has room for
  const max = Math.max(1, ...items.map((i) => i.value));
  const chart = svg("svg", { viewBox: `0 0 ${width} ${row * items.length + 8}`, role: "img",
    class: "bars" });
  chart.append(svg("title", {}, title));
  items.forEach((item, n) => {
    const y = 4 + n * row;
    const w = ((width - labelWidth - valueWidth) * item.value) / max;
    const label = item.label.length > fits ? `${item.label.slice(0, fits - 1)}…` : item.label;
    chart.append(svg("text", { x: labelWidth - 8, y: y + row * 0.65, "text-anchor": "end",
      class: "label" }, label));
    const bar = svg("rect", { x: labelWidth, y: y + 4, width: Math.max(w, 0), height: row - 8,
      class: "bar" });
    bar.append(svg("title", {}, `${item.label}: ${item.value}`));
    chart.append(bar);
    chart.append(svg("text", { x: labelWidth + w + 6, y: y + row * 0.65, class: "value" },
      String(item.value)));
  });
  container.replaceChildren(chart);
  redrawOnResize(container, () => barChart(container, items, title));
}
