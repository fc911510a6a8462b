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

/**
 * Vertical bars, one per item, labelled under (every nth label when crowded) and with
 * the value over each bar that is not zero.
 * @param {HTMLElement} container emptied and filled with the chart
 * @param {{label: string, value: number}[]} items
 * @param {string} title what the chart shows, for screen readers
 */
export function columnChart(container, items, title) {
  const width = 720, height = 240, top = 20, bottom = 40, left = 8;
  const max = Math.max(1, ...items.map((i) => i.value));
  const slot = (width - left) / Math.max(1, items.length);
  const every = Math.ceil(items.length / 12);
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
}

/**
 * Horizontal bars, one row per item, the label on the left and the value on the right.
 * @param {HTMLElement} container
 * @param {{label: string, value: number}[]} items
 * @param {string} title
 */
export function barChart(container, items, title) {
  if (!items.length) {
    const empty = document.createElement("p");
    empty.className = "empty";
    empty.textContent = "No calls in this period.";
    container.replaceChildren(empty);
    return;
  }
  const width = 720, row = 32, labelWidth = 260, valueWidth = 60;
  const max = Math.max(1, ...items.map((i) => i.value));
  const chart = svg("svg", { viewBox: `0 0 ${width} ${row * items.length + 8}`, role: "img",
    class: "bars" });
  chart.append(svg("title", {}, title));
  items.forEach((item, n) => {
    const y = 4 + n * row;
    const w = ((width - labelWidth - valueWidth) * item.value) / max;
    chart.append(svg("text", { x: labelWidth - 8, y: y + row * 0.65, "text-anchor": "end",
      class: "label" }, item.label));
    const bar = svg("rect", { x: labelWidth, y: y + 4, width: Math.max(w, 0), height: row - 8,
      class: "bar" });
    bar.append(svg("title", {}, `${item.label}: ${item.value}`));
    chart.append(bar);
    chart.append(svg("text", { x: labelWidth + w + 6, y: y + row * 0.65, class: "value" },
      String(item.value)));
  });
  container.replaceChildren(chart);
}
