// invertornot-ssg review, the map view: every image on the grid GET /api/map lays out (a gridded
// t-SNE: similar images side by side), zoomable; select a rectangle or a cluster and label it.
// Plain JS, no build step; review.js passes in what the two views share.
"use strict";
window.ReviewMap = (page) => {
  const { cfg, state, api, h, isHuman, labelOf, decisionOf, status, afterSave } = page;
  const CELL = 56; // px per cell at zoom 1 (review.css: .mtile is CELL - 4)
  const CATEGORIES = ["invert", "keep", "human", "unsure", "novel"];
  const NAMES = { invert: "invert", keep: "keep", human: "a person's", unsure: "unsure", novel: "novel" };
  const $ = (id) => document.getElementById(id);
  const port = $("mapport"), sizer = $("mapsizer"), map = $("map"), rubber = $("rubber");
  const view = { data: null, zoom: 1, selected: new Set(), tiles: new Map(), byCell: new Map(), busy: false };

  let byKey = new Map(), byKeyOf = null; // key -> item of state.items, rebuilt when that array is replaced
  function itemByKey(key) {
    if (byKeyOf !== state.items) [byKey, byKeyOf] = [new Map(state.items.map((item) => [item.key, item])), state.items];
    return byKey.get(key);
  }

  // How the tile is framed: a person's decision (saved, or an unsaved edit here) first, else the server's.
  function categoryOf(item) {
    const label = labelOf(item);
    if (label || (!state.edits.has(item.key) && isHuman(item))) return "human";
    const category = view.data.cells[item.key].category;
    return category === "human" ? "unsure" : category;
  }

  async function load() {
    status("Laying out the map… (a few seconds for a few thousand images)");
    try {
      view.data = await api("GET", "/api/map");
      status("");
    } catch (e) {
      status(`Could not lay out the map: ${e.message}`, true);
      return;
    }
    draw();
    fit();
  }

  function draw() {
    const data = view.data;
    map.style.width = `${data.cols * CELL}px`;
    map.style.height = `${data.rows * CELL}px`;
    view.tiles.clear();
    view.byCell.clear();
    const tiles = [];
    for (const item of state.items) {
      const cell = data.cells[item.key];
      if (!cell) continue;
      const img = h("img", { src: `/mini/${item.sha1}`, alt: "", loading: "lazy", decoding: "async", draggable: "false" });
      img.addEventListener("error", () => img.replaceWith(h("span", { class: "broken" })), { once: true });
      const tile = h("div", { class: "mtile", "data-key": item.key, title: item.key }, img);
      tile.style.left = `${cell.col * CELL}px`;
      tile.style.top = `${cell.row * CELL}px`;
      view.tiles.set(item.key, tile);
      view.byCell.set(`${cell.col},${cell.row}`, item.key);
      tiles.push(tile);
    }
    map.replaceChildren(...tiles);
    paint();
  }

  function paint() {
    const counts = Object.fromEntries(CATEGORIES.map((name) => [name, 0]));
    for (const [key, tile] of view.tiles) {
      const item = itemByKey(key);
      if (!item) continue;
      const category = categoryOf(item);
      counts[category] += 1;
      tile.className = `mtile cat-${category} ${decisionOf(item) === "invert" ? "inverted" : "kept"}`
        + (view.selected.has(key) ? " sel" : "");
    }
    $("legend").replaceChildren(...CATEGORIES.filter((name) => name !== "novel" || counts.novel)
      .map((name) => h("span", { class: `chip cat-${name}`, text: `${NAMES[name]} ${counts[name]}` })));
    const n = view.selected.size;
    $("selcount").textContent = n ? `${n} selected` : "Nothing selected";
    for (const id of ["sel-invert", "sel-keep", "sel-clear"]) $(id).disabled = n === 0 || view.busy;
  }

  // -- zoom: a CSS transform on the map; the sizer gives the scrollbars the zoomed size ----------

  function setZoom(zoom, clientX, clientY) {
    const rect = port.getBoundingClientRect();
    const px = clientX === undefined ? port.clientWidth / 2 : clientX - rect.left;
    const py = clientY === undefined ? port.clientHeight / 2 : clientY - rect.top;
    const mx = (port.scrollLeft + px) / view.zoom, my = (port.scrollTop + py) / view.zoom;
    view.zoom = Math.min(Math.max(zoom, 0.05), 4);
    map.style.transform = `scale(${view.zoom})`;
    sizer.style.width = `${view.data.cols * CELL * view.zoom}px`;
    sizer.style.height = `${view.data.rows * CELL * view.zoom}px`;
    port.scrollLeft = mx * view.zoom - px;
    port.scrollTop = my * view.zoom - py;
  }

  function fit() {
    const data = view.data;
    setZoom(Math.min(port.clientWidth / (data.cols * CELL), port.clientHeight / (data.rows * CELL), 1));
  }

  // -- selection ------------------------------------------------------------------------------

  function mapPoint(event) {
    const rect = sizer.getBoundingClientRect();
    return { x: (event.clientX - rect.left) / view.zoom, y: (event.clientY - rect.top) / view.zoom };
  }

  function select(keys, add) {
    if (!add) view.selected.clear();
    for (const key of keys) view.selected.add(key);
    paint();
  }

  function inRectangle(a, b) {
    const [c0, c1] = [Math.floor(Math.min(a.x, b.x) / CELL), Math.floor(Math.max(a.x, b.x) / CELL)];
    const [r0, r1] = [Math.floor(Math.min(a.y, b.y) / CELL), Math.floor(Math.max(a.y, b.y) / CELL)];
    const keys = [];
    for (const [key, cell] of Object.entries(view.data.cells)) {
      if (cell.col >= c0 && cell.col <= c1 && cell.row >= r0 && cell.row <= r1 && view.tiles.has(key)) keys.push(key);
    }
    return keys;
  }

  // The clicked image and those near it in the t-SNE plane the grid was assigned from.
  function cluster(key) {
    const centre = view.data.cells[key];
    const radius = Number($("radius").value) / 100;
    return Object.entries(view.data.cells)
      .filter(([other, cell]) => view.tiles.has(other) && Math.hypot(cell.x - centre.x, cell.y - centre.y) <= radius)
      .map(([other]) => other);
  }

  let drag = null;
  port.addEventListener("pointerdown", (event) => {
    if (event.button !== 0 || !view.data) return;
    const onScrollbar = event.target === port && (event.offsetX >= port.clientWidth || event.offsetY >= port.clientHeight);
    if (onScrollbar) return;
    drag = { start: mapPoint(event), moved: false, add: event.shiftKey };
    port.setPointerCapture(event.pointerId);
    event.preventDefault();
  });
  port.addEventListener("pointermove", (event) => {
    if (!drag) return;
    const here = mapPoint(event);
    if (!drag.moved && Math.hypot(here.x - drag.start.x, here.y - drag.start.y) * view.zoom < 5) return;
    drag.moved = true;
    const z = view.zoom;
    Object.assign(rubber.style, {
      left: `${Math.min(here.x, drag.start.x) * z}px`, top: `${Math.min(here.y, drag.start.y) * z}px`,
      width: `${Math.abs(here.x - drag.start.x) * z}px`, height: `${Math.abs(here.y - drag.start.y) * z}px`,
    });
    rubber.hidden = false;
  });
  port.addEventListener("pointerup", (event) => {
    if (!drag) return;
    const { start, moved, add } = drag;
    drag = null;
    rubber.hidden = true;
    const end = mapPoint(event);
    if (moved) return select(inRectangle(start, end), add);
    const key = view.byCell.get(`${Math.floor(end.x / CELL)},${Math.floor(end.y / CELL)}`);
    if (key) select(cluster(key), add);
    else if (!add) select([], false);
  });
  port.addEventListener("pointercancel", () => { drag = null; rubber.hidden = true; });
  port.addEventListener("wheel", (event) => {
    if (!view.data) return;
    event.preventDefault();
    setZoom(view.zoom * Math.exp(-event.deltaY * 0.0015), event.clientX, event.clientY);
  }, { passive: false });

  // -- labeling a selection: written at once, through the same POST /api/labels as Save ---------

  async function labelSelection(label) {
    if (!view.selected.size || view.busy) return;
    const keys = [...view.selected];
    const skipped = keys.filter((key) => isHuman(itemByKey(key)));
    const labels = Object.fromEntries(keys.filter((key) => !isHuman(itemByKey(key))).map((key) => [key, label]));
    const n = Object.keys(labels).length;
    const kept = skipped.length ? ` ${skipped.length} a person had labeled kept their label.` : "";
    if (!n) return status(`Nothing to label: a person has labeled every selected image.${kept}`);
    view.busy = true;
    paint();
    try {
      const data = await api("POST", "/api/labels", { labels });
      for (const key of Object.keys(labels)) state.edits.delete(key);
      view.selected.clear();
      afterSave(data);
      view.data = await api("GET", "/api/map");
      status(`Labeled ${n} image${n === 1 ? "" : "s"} ${label} in ${cfg.overrides}.${kept}`);
    } catch (e) {
      status(`Not saved: ${e.message}`, true);
    } finally {
      view.busy = false;
      draw();
    }
  }

  $("zoom-in").addEventListener("click", () => setZoom(view.zoom * 1.25));
  $("zoom-out").addEventListener("click", () => setZoom(view.zoom / 1.25));
  $("zoom-fit").addEventListener("click", fit);
  $("sel-invert").addEventListener("click", () => labelSelection("invert"));
  $("sel-keep").addEventListener("click", () => labelSelection("keep"));
  $("sel-clear").addEventListener("click", () => select([], false));
  $("spot").addEventListener("change", (event) => map.classList.toggle("spot", event.target.checked));

  return {
    show() { if (view.data) { draw(); } else { load(); } },
    onKey(event) {
      if (event.key === "Escape" && view.selected.size) { select([], false); return true; }
      return false;
    },
    refresh() { if (view.data) paint(); },
  };
};
