// invertornot-ssg review: the grid of the site's images, most uncertain first. Plain JS, no build step.
"use strict";
(() => {
  const cfg = JSON.parse(document.getElementById("config").textContent);
  const root = document.documentElement;
  root.style.setProperty("--invert-filter", cfg.invert_filter);
  root.style.setProperty("--keep-filter", cfg.keep_filter);
  root.style.setProperty("--page", cfg.page_background);
  // The token stays in this page and in a cookie; keep it out of the address bar and history.
  if (location.search) history.replaceState(null, "", location.pathname);

  const HUMAN_METHODS = new Set(cfg.human_methods);
  const FILTERS = {
    uncertain: (item) => !isHuman(item) && (item.p_invert === null || Math.abs(item.p_invert - cfg.threshold) < cfg.unsure),
    automatic: (item) => !isHuman(item),
    human: (item) => isHuman(item),
    all: () => true,
  };
  const state = {
    items: [],
    edits: new Map(), // key -> "invert" | "keep" | null: labels not saved yet
    filter: "uncertain",
    page: 0,
    focus: 0,
    shown: [], // the items of the current page, in order
    saving: false,
    view: "grid", // or "map" (reviewmap.js)
  };
  const $ = (id) => document.getElementById(id);
  const grid = $("grid");

  // -- data ---------------------------------------------------------------------------------

  async function api(method, path, body) {
    const init = { method, headers: { "X-Review-Token": cfg.token }, credentials: "same-origin" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    if (!response.ok) throw new Error((data && data.error) || `${response.status} ${response.statusText}`);
    return data;
  }

  function isHuman(item) { return item.label !== null || HUMAN_METHODS.has(item.method); }
  function labelOf(item) { return state.edits.has(item.key) ? state.edits.get(item.key) : item.label; }

  // What the next build does with the image: a label wins; without one, the last automatic decision
  // (null when the next build decides afresh: a label was just removed, or none was ever made).
  function decisionOf(item) {
    const label = labelOf(item);
    if (label) return label;
    if (item.invert === null || item.method === "override" || item.label !== null) return null;
    return item.invert ? "invert" : "keep";
  }

  let mapView = null; // reviewmap.js's view, made on first use

  function setView(name) {
    if (name === "map" && !cfg.has_map) return;
    state.view = name;
    $("gridview").hidden = name !== "grid";
    $("mapview").hidden = name !== "map";
    for (const button of $("views").querySelectorAll("button")) {
      button.classList.toggle("active", button.dataset.view === name);
      button.setAttribute("aria-pressed", String(button.dataset.view === name));
    }
    if (name === "map") {
      mapView = mapView || window.ReviewMap({ cfg, state, api, h, isHuman, labelOf, decisionOf, status, afterSave });
      mapView.show();
    } else render();
  }

  // Labels were saved (Save, or a selection on the map): the server's items are the new truth.
  function afterSave(data) {
    state.items = data.items;
    if (state.view === "grid") render();
    else updateToolbar();
  }

  function setLabel(item, label) {
    if (label === item.label) state.edits.delete(item.key);
    else state.edits.set(item.key, label);
    updateTile(item);
    updateToolbar();
  }

  // -- rendering ----------------------------------------------------------------------------

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (name === "class") el.className = value;
      else if (name === "text") el.textContent = value;
      else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
      else el.setAttribute(name, value);
    }
    for (const child of children) if (child) el.append(child);
    return el;
  }

  function visible() { return state.items.filter(FILTERS[state.filter]); }

  function render() {
    const items = visible();
    const pages = Math.max(1, Math.ceil(items.length / cfg.per_page));
    state.page = Math.min(Math.max(state.page, 0), pages - 1);
    state.shown = items.slice(state.page * cfg.per_page, (state.page + 1) * cfg.per_page);
    state.focus = Math.min(state.focus, Math.max(0, state.shown.length - 1));
    const tiles = state.shown.map((item, index) => tileFor(item, index));
    if (!tiles.length) {
      const what = { uncertain: "uncertain", automatic: "automatic", human: "human-labeled", all: "" }[state.filter];
      tiles.push(h("p", { class: "empty", text: state.items.length
        ? `No ${what} images. Pick another filter above.`
        : "No images to review: build the site first (builds record every image in the overrides file)." }));
    }
    grid.replaceChildren(...tiles);
    for (const id of ["pager-top", "pager-bottom"]) $(id).replaceChildren(...pager(items.length, pages));
    updateToolbar();
    if (state.shown.length) focusTile(state.focus, false);
  }

  function pager(count, pages) {
    if (pages <= 1) return [h("span", { text: `${count} image${count === 1 ? "" : "s"}` })];
    const first = state.page * cfg.per_page + 1;
    const last = Math.min(count, first + cfg.per_page - 1);
    return [
      h("button", { type: "button", class: "prev", onclick: () => goPage(state.page - 1), text: "‹ Previous" }),
      h("span", { text: `page ${state.page + 1} of ${pages} (${first}–${last} of ${count})` }),
      h("button", { type: "button", class: "next", onclick: () => goPage(state.page + 1), text: "Next ›" }),
    ];
  }

  function tileFor(item, index) {
    const pane = (label, caption) => {
      const img = h("img", { src: `/thumb/${item.sha1}`, alt: "", loading: "lazy", decoding: "async" });
      img.addEventListener("error", () => img.replaceWith(h("span", { class: "broken", text: "no preview" })), { once: true });
      return h("button", {
        type: "button", class: `pane ${label}`, tabindex: "-1", title: `${caption} (${label[0]})`,
        onclick: (event) => { event.stopPropagation(); focusTile(index); setLabel(item, label); },
      }, img, h("span", { class: "cap", text: caption }));
    };
    const tile = h("div", {
      class: "tile", tabindex: "-1", role: "group", "data-key": item.key, "data-index": String(index),
      "aria-label": item.key, onclick: () => focusTile(index),
    },
    h("div", { class: "panes" }, pane("keep", "kept"), pane("invert", "inverted")),
    h("div", { class: "meta" },
      h("a", { class: "name", href: `/image/${item.sha1}`, target: "_blank", rel: "noopener noreferrer",
        title: `${item.key}${item.width ? ` (${item.width}×${item.height})` : ""}: open the original`, text: item.key }),
      h("div", { class: "decision" })));
    tile._item = item;
    paintTile(tile, item);
    return tile;
  }

  function paintTile(tile, item) {
    const decision = decisionOf(item);
    const label = labelOf(item);
    const edited = state.edits.has(item.key);
    tile.classList.toggle("edited", edited);
    tile.classList.toggle("human", Boolean(label) || (!edited && HUMAN_METHODS.has(item.method)));
    for (const pane of tile.querySelectorAll(".pane")) {
      pane.classList.toggle("chosen", pane.classList.contains(decision || "none"));
    }
    const parts = [];
    if (label) parts.push(h("b", { text: label }), ` · labeled${edited ? "" : " in the file"}`);
    else if (decision) {
      parts.push(h("b", { text: decision }), ` · ${item.method}`);
      if (item.p_invert !== null) parts.push(` · p ${item.p_invert.toFixed(2)}`);
      if (item.confidence !== null) parts.push(` · ${Math.round(item.confidence * 100)}% sure`);
    } else parts.push(h("b", { text: "automatic" }), " · decided at the next build");
    if (label && item.method && item.method !== "override") {
      const auto = item.invert === null ? "" : item.invert ? "invert" : "keep";
      parts.push(` (model: ${auto} ${item.method}${item.p_invert !== null ? ` p ${item.p_invert.toFixed(2)}` : ""})`);
    }
    if (edited) parts.push(h("span", { class: "state", text: " · unsaved" }));
    tile.querySelector(".decision").replaceChildren(...parts);
  }

  function tileAt(index) { return grid.querySelector(`.tile[data-index="${index}"]`); }

  function updateTile(item) {
    const index = state.shown.indexOf(item);
    const tile = index >= 0 ? tileAt(index) : null;
    if (tile) paintTile(tile, item);
  }

  function updateToolbar() {
    for (const button of $("filters").querySelectorAll("button")) {
      const name = button.dataset.filter;
      button.classList.toggle("active", name === state.filter);
      button.setAttribute("aria-pressed", String(name === state.filter));
      button.querySelector(".count").textContent = String(state.items.filter(FILTERS[name]).length);
    }
    const n = state.edits.size;
    const save = $("save");
    save.disabled = n === 0 || state.saving;
    save.textContent = n ? `Save ${n} label${n === 1 ? "" : "s"}` : "Save";
  }

  function focusTile(index, scroll = true) {
    if (!state.shown.length) return;
    index = Math.min(Math.max(index, 0), state.shown.length - 1);
    const old = tileAt(state.focus);
    if (old) old.tabIndex = -1;
    state.focus = index;
    const tile = tileAt(index);
    if (!tile) return;
    tile.tabIndex = 0;
    tile.focus({ preventScroll: true });
    if (scroll) tile.scrollIntoView({ block: "nearest" });
  }

  function columns() {
    const template = getComputedStyle(grid).gridTemplateColumns;
    return Math.max(1, template.split(" ").filter(Boolean).length);
  }

  function goPage(page) {
    state.page = page;
    state.focus = 0;
    render();
    window.scrollTo(0, 0);
  }

  function setFilter(name) {
    if (!(name in FILTERS)) return;
    state.filter = name;
    goPage(0);
  }

  // -- saving and retraining ----------------------------------------------------------------

  function status(content, error = false) {
    const el = $("status");
    el.classList.toggle("error", error);
    el.replaceChildren(...[].concat(content));
  }

  async function load() {
    try {
      const data = await api("GET", "/api/items");
      state.items = data.items;
      // Open on the first filter that shows something: uncertain images, else every automatic
      // decision, else all (an empty page is no place to start).
      state.filter = ["uncertain", "automatic", "all"].find((name) => state.items.some(FILTERS[name])) || "uncertain";
      setView(state.view);
    } catch (e) {
      status(`Could not load the images: ${e.message}`, true);
    }
  }

  async function save() {
    if (!state.edits.size || state.saving) return;
    state.saving = true;
    updateToolbar();
    const labels = Object.fromEntries(state.edits);
    try {
      const data = await api("POST", "/api/labels", { labels });
      state.edits.clear();
      afterSave(data);
      if (mapView) mapView.refresh();
      const n = data.changed.length;
      status([
        `Saved ${n} label${n === 1 ? "" : "s"} to ${cfg.overrides}. Retrain the head to learn from them: `,
        ...(cfg.can_retrain ? [h("button", { type: "button", onclick: retrain, text: "Retrain now" }), " or run "] : ["run "]),
        h("code", { text: cfg.retrain_command }),
      ]);
    } catch (e) {
      status(`Not saved: ${e.message}`, true);
    } finally {
      state.saving = false;
      updateToolbar();
    }
  }

  async function retrain() {
    if (!cfg.can_retrain) {
      status(["Run ", h("code", { text: cfg.retrain_command })]);
      return;
    }
    if (state.edits.size) {
      status("Save your labels first: retraining learns from the saved file.", true);
      return;
    }
    const button = $("retrain");
    button.disabled = true;
    status("Retraining… (images the store has no embedding for are embedded first)");
    try {
      const data = await api("POST", "/api/retrain", {});
      status(["Retrained.", h("pre", { class: "lines", text: data.lines.join("\n") })]);
    } catch (e) {
      status(`Retraining failed: ${e.message}`, true);
    } finally {
      button.disabled = false;
    }
  }

  // -- input --------------------------------------------------------------------------------

  function onKey(event) {
    const target = event.target;
    if (target instanceof HTMLElement && target.closest("input, textarea, select, [contenteditable]")) return;
    if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "s") {
      event.preventDefault();
      save();
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (state.view === "map") {
      if (mapView && mapView.onKey(event)) event.preventDefault();
      return;
    }
    const onButton = target instanceof HTMLElement && target.matches("button, a");
    const item = state.shown[state.focus];
    const cols = columns();
    const actions = {
      ArrowRight: () => focusTile(state.focus + 1),
      ArrowLeft: () => focusTile(state.focus - 1),
      ArrowDown: () => focusTile(state.focus + cols),
      ArrowUp: () => focusTile(state.focus - cols),
      Home: () => focusTile(0),
      End: () => focusTile(state.shown.length - 1),
      PageDown: () => goPage(state.page + 1),
      PageUp: () => goPage(state.page - 1),
      i: () => item && (setLabel(item, "invert"), focusTile(state.focus + 1)),
      k: () => item && (setLabel(item, "keep"), focusTile(state.focus + 1)),
      u: () => item && (setLabel(item, null), focusTile(state.focus + 1)),
      " ": () => item && !onButton && setLabel(item, decisionOf(item) === "invert" ? "keep" : "invert"),
      Enter: () => item && !onButton && setLabel(item, decisionOf(item) === "invert" ? "keep" : "invert"),
    };
    const action = actions[event.key.length === 1 ? event.key.toLowerCase() : event.key];
    if (!action || ((event.key === " " || event.key === "Enter") && onButton)) return;
    event.preventDefault();
    action();
  }

  document.addEventListener("keydown", onKey);
  $("filters").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-filter]");
    if (button) setFilter(button.dataset.filter);
  });
  $("views").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-view]");
    if (button) setView(button.dataset.view);
  });
  if (!cfg.has_map) $("views").hidden = true;
  $("save").addEventListener("click", save);
  $("retrain").addEventListener("click", retrain);
  window.addEventListener("beforeunload", (event) => {
    if (state.edits.size) event.preventDefault();
  });
  load();
})();
