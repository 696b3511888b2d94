// The anywidget front end: DOM, events and the kernel link. Geometry, edit rules and
// drawing live in their own modules; this file only wires them to the page and the model.
//
// Kernel link:
//   traits  _image, _boxes, _acked, categories, threshold, status, last_saved, message, ...
//   out     model.send({type: "add"|"update"|"delete"|"accept"|"accept_all"|"undo"|...,
//           seq}) once per committed edit (mouse-up / key-up), never per mouse move
//   in      msg:custom {type: "image", image_id, mime, ...} + one binary buffer holding the
//           image file's bytes, cached per image id so a prefetched image shows at once
//   in      msg:custom {type: "masks", sizes, masks: [[key, size index, end, box?]]} + one
//           buffer: each mask once, as RLE text or a PNG of its box (whichever is smaller);
//           the annotations in `_boxes` name their mask by key. A mask painted here goes up
//           as RLE inside its edit command and is known by its key without coming back.

import { Editor, KEYMAP } from "./editor.js";
import { clientToCanvas } from "./geometry.js";
import { MaskStore, decodePngInBrowser } from "./mask_store.js";
import { Renderer } from "./render.js";

let seqCounter = 0; // page-wide, so the kernel's `acked` orders every view's edits

/** Decoded images by id, shared by the views of one model; a few, least recently used. */
class ImageCache {
  constructor(limit = 4) {
    this.limit = limit;
    this.entries = new Map(); // image id -> {promise, bitmap}
  }

  put(imageId, blob, keep) {
    const old = this.entries.get(imageId);
    if (old) return old.promise;
    const entry = { bitmap: null, promise: null };
    // JPEG EXIF orientation is applied here: the store's sizes are the oriented ones
    entry.promise = createImageBitmap(blob, { imageOrientation: "from-image" }).then((bitmap) => {
      entry.bitmap = bitmap;
      return bitmap;
    });
    this.entries.set(imageId, entry);
    this._evict(keep);
    return entry.promise;
  }

  get(imageId) {
    const entry = this.entries.get(imageId);
    if (!entry) return null;
    this.entries.delete(imageId); // re-insert: most recently used last
    this.entries.set(imageId, entry);
    return entry.promise;
  }

  _evict(keep) {
    for (const [id, entry] of this.entries) {
      if (this.entries.size <= this.limit) break;
      if (id === keep) continue;
      this.entries.delete(id);
      if (entry.bitmap && entry.bitmap.close) entry.bitmap.close();
    }
  }
}

const caches = new WeakMap();
const maskStores = new WeakMap();

function cacheFor(model) {
  let cache = caches.get(model);
  if (!cache) {
    cache = new ImageCache();
    caches.set(model, cache);
  }
  return cache;
}

function masksFor(model) {
  let store = maskStores.get(model);
  if (!store) {
    store = new MaskStore({ decodePng: decodePngInBrowser });
    maskStores.set(model, store);
  }
  return store;
}

const TOOL_BUTTONS = [
  ["box", "▭", "box tool (B)"],
  ["polygon", "⬠", "polygon tool (P)"],
  ["brush", "✎", "mask brush (M)"],
  ["eraser", "⌫", "mask eraser (E)"],
  ["keypoints", "✛", "keypoints tool (K)"],
];

function h(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

function render({ model, el }) {
  const cache = cacheFor(model);
  const masks = masksFor(model);
  const editor = new Editor({ now: () => performance.now() });
  editor.masks = masks;
  const stats = { nextToDrawn: [], sent: 0, inputTimes: [] };
  let lastSent = 0;
  let lastAcked = model.get("_acked") || 0;
  let navStart = null;
  let started = false; // "ready" sent: the kernel (re)sends what this view needs

  // ------------------------------------------------------------------ DOM
  const btn = (label, title, onClick) => {
    const b = h("button", { type: "button", title, class: "aw-btn", text: label });
    b.addEventListener("click", (e) => {
      e.stopPropagation();
      onClick();
      root.focus({ preventScroll: true });
    });
    return b;
  };
  const position = h("span", { class: "aw-position" });
  const name = h("span", { class: "aw-name" });
  const badge = h("span", { class: "aw-badge" });
  const classes = h("span", { class: "aw-classes" });
  // "+" in the class bar: type a name, Enter adds it (the kernel checks the name)
  const newClass = h("input", {
    type: "text",
    class: "aw-new-class",
    placeholder: "new class",
    title: "name of the new class (Enter adds it, Esc cancels)",
    hidden: "",
  });
  let wantedClass = null; // selected once the kernel has added it
  const addClassButton = h("button", { type: "button", class: "aw-btn aw-add-class", title: "add a class", text: "+" });
  addClassButton.addEventListener("click", (e) => {
    e.stopPropagation();
    newClass.hidden = false;
    newClass.focus();
  });
  newClass.addEventListener("keydown", (e) => {
    e.stopPropagation(); // typing a name: no tool shortcuts, no notebook shortcuts
    if (e.key === "Enter") {
      const name = newClass.value.trim();
      if (name) {
        wantedClass = name;
        model.send({ type: "add_category", name });
      }
      newClass.value = "";
      newClass.hidden = true;
      root.focus({ preventScroll: true });
    } else if (e.key === "Escape") {
      newClass.value = "";
      newClass.hidden = true;
      root.focus({ preventScroll: true });
    }
  });
  newClass.addEventListener("keyup", (e) => e.stopPropagation());
  const thresholdInput = h("input", {
    type: "range",
    min: "0",
    max: "1",
    step: "0.01",
    class: "aw-threshold",
    title: "hide predictions below this score",
  });
  const thresholdValue = h("span", { class: "aw-threshold-value" });
  const saved = h("span", { class: "aw-saved" });
  const folderSelect = h("select", { class: "aw-folder", title: "folder" });
  const statusSelect = h("select", { class: "aw-status-filter", title: "status" });
  for (const [value, label] of [["", "any status"], ["unlabeled", "unlabeled"], ["predicted", "predicted"], ["reviewed", "reviewed"]]) {
    statusSelect.append(h("option", { value, text: label }));
  }
  for (const [select, trait] of [[folderSelect, "folder"], [statusSelect, "status_filter"]]) {
    select.addEventListener("change", () => {
      model.set(trait, select.value);
      model.save_changes();
    });
    select.addEventListener("keydown", (e) => e.stopPropagation());
  }
  const tools = h("span", { class: "aw-tools" });
  for (const [tool, label, title] of TOOL_BUTTONS) {
    const b = btn(label, title, () => {
      editor.setTool(tool);
      renderer.invalidate();
      refreshChrome();
    });
    b.dataset.tool = tool;
    tools.append(b);
  }
  const undoButton = btn("↶", "undo (Ctrl+Z)", () => key("z", { ctrl: true }));
  const redoButton = btn("↷", "redo (Ctrl+Shift+Z)", () => key("z", { ctrl: true, shift: true }));
  const toolbar = h("div", { class: "aw-toolbar" }, [
    btn("◀", "previous image (Shift+Space)", () => send({ type: "previous" })),
    btn("▶", "next image (Space)", () => send({ type: "next" })),
    btn("▶▶ to do", "next unlabeled or predicted image (U)", () => send({ type: "next_unlabeled" })),
    folderSelect,
    statusSelect,
    position,
    name,
    badge,
    tools,
    classes,
    addClassButton,
    newClass,
    h("label", { class: "aw-threshold-label", text: "score ≥ " }, [thresholdInput, thresholdValue]),
    btn("−", "zoom out (-)", () => key("-")),
    btn("fit", "fit (F)", () => key("f")),
    btn("1:1", "one image pixel per screen pixel (0)", () => key("0")),
    btn("+", "zoom in (+)", () => key("+")),
    undoButton,
    redoButton,
    btn("?", "keyboard map (? or H)", () => key("?")),
    saved,
  ]);
  const canvas = h("canvas", { class: "aw-canvas" });
  const helpRows = KEYMAP.map(([keys, what]) =>
    h("tr", {}, [h("td", { class: "aw-keys", text: keys }), h("td", { text: what })]),
  );
  // two columns: the whole map fits the default 560 px stage instead of scrolling
  const half = Math.ceil(helpRows.length / 2);
  const help = h("div", { class: "aw-help", hidden: "" }, [
    h("div", { class: "aw-help-title", text: "Keyboard map" }),
    h("div", { class: "aw-help-columns" }, [
      h("table", {}, [h("tbody", {}, helpRows.slice(0, half))]),
      h("table", {}, [h("tbody", {}, helpRows.slice(half))]),
    ]),
  ]);
  const message = h("div", { class: "aw-message" });
  const hint = h("div", { class: "aw-hint" });
  const stage = h("div", { class: "aw-stage" }, [canvas, help, message, hint]);
  // data-lm-suppress-shortcuts: JupyterLab leaves our keys alone while we have focus
  const root = h("div", { class: "aw-annotator", tabindex: "0", "data-lm-suppress-shortcuts": "true" }, [
    toolbar,
    stage,
  ]);
  el.append(root);

  const renderer = new Renderer(canvas);
  renderer.editor = editor;
  renderer.onDrawn = () => {
    if (navStart !== null) {
      stats.nextToDrawn.push(performance.now() - navStart);
      navStart = null;
    }
  };
  // for tests and benchmarks: the live objects behind this view
  root.__annotator = { editor, renderer, stats, model, cache, masks };
  editor.onToolChange = (tool) => {
    if (model.get("tool") !== tool) {
      model.set("tool", tool);
      model.save_changes();
    }
  };

  // --------------------------------------------------------- kernel link
  function send(cmd) {
    if (["next", "previous", "next_unlabeled", "submit"].includes(cmd.type)) {
      navStart = performance.now();
    }
    const seq = ++seqCounter;
    lastSent = seq;
    stats.sent++;
    model.send({ ...cmd, seq });
  }

  function apply(res) {
    for (const cmd of res.commands) send(cmd);
    renderer.invalidate();
    refreshChrome();
  }

  function key(k, mods = {}) {
    apply(editor.keyDown({ key: k, ...mods }));
    apply(editor.keyUp({ key: k }));
  }

  function showBitmap() {
    const image = editor.image;
    if (!image) return;
    const promise = cache.get(image.id);
    if (!promise) {
      renderer.setBitmap(null, null);
      // the kernel sends an image before showing it; missing means evicted: ask again
      if (started) model.send({ type: "need_image", image_id: image.id });
      return;
    }
    promise.then((bitmap) => {
      if (editor.image && editor.image.id === image.id) renderer.setBitmap(image.id, bitmap);
    });
  }

  // trait changes arrive as several change:x events for one kernel update: coalesce them
  const dirty = { image: false, boxes: false, ack: false };
  let syncQueued = false;
  function queueSync(what) {
    dirty[what] = true;
    if (syncQueued) return;
    syncQueued = true;
    queueMicrotask(sync);
  }

  function sync() {
    syncQueued = false;
    const changed = { ...dirty };
    dirty.image = dirty.boxes = dirty.ack = false;
    const image = model.get("_image") || {};
    const acked = model.get("_acked") || 0;
    if (image.id == null) {
      editor.image = null;
      renderer.setBitmap(null, null);
    } else if (!editor.image || editor.image.id !== image.id) {
      editor.setImage(image, model.get("_boxes") || []);
      showBitmap();
    } else if (acked >= lastSent) {
      // boxes changed with no new ack: made elsewhere (Python API, another view)
      const external = changed.boxes && acked === lastAcked;
      editor.adopt(model.get("_boxes") || [], { external });
    }
    lastAcked = acked;
    askForMasks();
    renderer.invalidate();
    refreshChrome();
  }

  /** Masks the annotations name but this page lost (evicted): the kernel sends them again. */
  function askForMasks() {
    const keys = masks.missing(editor.boxes);
    if (keys.length && started) model.send({ type: "need_masks", keys });
  }

  function onCustom(msg, buffers) {
    if (msg && msg.type === "masks" && buffers && buffers.length) {
      masks.receive(msg, buffers[0]).then(() => {
        editor._changed(); // PNG masks decoded: redraw with them
        renderer.invalidate();
      });
      editor._changed();
      renderer.invalidate();
      return;
    }
    if (!msg || msg.type !== "image" || !buffers || !buffers.length) return;
    const blob = new Blob([buffers[0]], { type: msg.mime || "image/jpeg" });
    const current = editor.image ? editor.image.id : null;
    cache.put(msg.image_id, blob, current).then(() => {
      if (current === msg.image_id || (editor.image && editor.image.id === msg.image_id)) showBitmap();
    });
  }

  const listeners = [
    ["change:_image", () => queueSync("image")],
    ["change:_boxes", () => queueSync("boxes")],
    ["change:_acked", () => queueSync("ack")],
    ["change:categories", () => {
      editor.setCategories(model.get("categories") || []);
      const added = wantedClass && editor.categories.find((c) => c.name === wantedClass);
      if (added) {
        editor.category = added.id; // the class just added is the one to draw with
        wantedClass = null;
      }
      renderer.invalidate();
      refreshChrome();
    }],
    ["change:threshold", () => {
      editor.setThreshold(model.get("threshold"));
      renderer.invalidate();
      refreshChrome();
    }],
    ["change:status", () => refreshChrome()],
    ["change:last_saved", () => refreshChrome()],
    ["change:message", () => refreshChrome()],
    ["change:position", () => refreshChrome()],
    ["change:folders", () => refreshChrome()],
    ["change:folder", () => refreshChrome()],
    ["change:status_filter", () => refreshChrome()],
    ["change:can_undo", () => refreshChrome()],
    ["change:can_redo", () => refreshChrome()],
    ["change:height", () => resize()],
    ["change:tool", () => {
      editor.setTool(model.get("tool") || "box");
      renderer.invalidate();
      refreshChrome();
    }],
    ["change:mask_mode", () => {
      editor.setMaskMode(model.get("mask_mode"));
      refreshChrome();
    }],
    ["msg:custom", onCustom],
  ];
  for (const [event, fn] of listeners) model.on(event, fn);

  // -------------------------------------------------------------- chrome
  let classKey = "";
  function refreshChrome() {
    const image = model.get("_image") || {};
    const pos = model.get("position") || [0, 0];
    position.textContent = pos[1] ? `${pos[0] + 1} / ${pos[1]}` : "no images";
    name.textContent = image.path || "";
    name.title = image.path || "";
    const status = model.get("status") || "";
    badge.textContent = status;
    badge.className = `aw-badge aw-status-${status}`;
    const t = Number(model.get("threshold")) || 0;
    if (document.activeElement !== thresholdInput) thresholdInput.value = String(t);
    thresholdValue.textContent = editor.threshold.toFixed(2);
    const ts = model.get("last_saved");
    saved.textContent = ts ? `saved ${new Date(ts * 1000).toLocaleTimeString()}` : "";
    const text = editor.message || model.get("message") || "";
    message.textContent = text;
    message.hidden = !text;
    const tip = editor.image ? editor.hint() : "";
    hint.textContent = tip;
    hint.hidden = !tip;
    for (const b of tools.children) b.classList.toggle("aw-current", b.dataset.tool === editor.tool);
    if (editor.help) help.removeAttribute("hidden");
    else help.setAttribute("hidden", "");
    const folders = model.get("folders") || [];
    const fk = folders.join("\n");
    if (folderSelect.dataset.key !== fk) {
      folderSelect.dataset.key = fk;
      folderSelect.replaceChildren(
        h("option", { value: "", text: "all folders" }),
        ...folders.map((f) => h("option", { value: f, text: f })),
      );
    }
    folderSelect.value = model.get("folder") || "";
    statusSelect.value = model.get("status_filter") || "";
    undoButton.disabled = !model.get("can_undo") && !editor.undo.canUndo;
    redoButton.disabled = !model.get("can_redo") && !editor.undo.canRedo;
    const cats = editor.categories;
    const k = cats.map((c) => `${c.id}:${c.name}`).join("|");
    if (k !== classKey) {
      classKey = k;
      classes.replaceChildren(
        ...cats.map((c, i) => {
          const b = btn(i < 9 ? `${i + 1} ${c.name}` : c.name, `class ${c.name}`, () => {
            if (i < 9) key(String(i + 1));
            else editor.category = c.id;
            refreshChrome();
          });
          b.dataset.category = String(c.id);
          return b;
        }),
      );
    }
    for (const b of classes.children) {
      b.classList.toggle("aw-current", Number(b.dataset.category) === editor.category);
    }
  }

  // -------------------------------------------------------------- events
  const toCanvas = (e) => clientToCanvas(e.clientX, e.clientY, canvas.getBoundingClientRect(), renderer.cssW, renderer.cssH);

  canvas.addEventListener("pointerdown", (e) => {
    e.stopPropagation();
    e.preventDefault();
    root.focus({ preventScroll: true });
    canvas.setPointerCapture(e.pointerId);
    editor.message = "";
    const [x, y] = toCanvas(e);
    apply(editor.pointerDown({ x, y, button: e.button, shift: e.shiftKey }));
  });
  canvas.addEventListener("pointermove", (e) => {
    if (editor.drag) {
      const t0 = performance.now();
      const [x, y] = toCanvas(e);
      if (editor.pointerMove({ x, y }).handled) renderer.invalidate();
      stats.inputTimes.push(performance.now() - t0);
      if (stats.inputTimes.length > 5000) stats.inputTimes.splice(0, 1000);
    } else {
      const [x, y] = toCanvas(e);
      canvas.style.cursor = editor.cursorAt(x, y);
      if (editor.hoverAt({ x, y }).handled) renderer.invalidate();
    }
  });
  canvas.addEventListener("pointerleave", () => {
    editor.pointerLeave();
    renderer.invalidate();
  });
  const up = (e) => {
    if (!editor.drag) return;
    const [x, y] = toCanvas(e);
    apply(editor.pointerUp({ x, y }));
    root.focus({ preventScroll: true });
  };
  canvas.addEventListener("pointerup", up);
  canvas.addEventListener("pointercancel", () => apply(editor.cancel()));
  // JupyterLab's notebook takes focus on mousedown in a cell; our canvas keeps it
  canvas.addEventListener("mousedown", (e) => e.stopPropagation());
  canvas.addEventListener("contextmenu", (e) => e.preventDefault());
  canvas.addEventListener(
    "wheel",
    (e) => {
      e.preventDefault();
      const [x, y] = toCanvas(e);
      apply(editor.wheel({ x, y, deltaY: e.deltaMode === 1 ? e.deltaY * 16 : e.deltaY }));
    },
    { passive: false },
  );

  const mods = (e) => ({ key: e.key, shift: e.shiftKey, ctrl: e.ctrlKey, meta: e.metaKey, alt: e.altKey, repeat: e.repeat });
  root.addEventListener("keydown", (e) => {
    if (e.target === thresholdInput) return;
    editor.message = "";
    const res = editor.keyDown(mods(e));
    if (res.handled) e.preventDefault();
    // plain keys never reach the notebook ('a', 'x', digits are notebook shortcuts there)
    if (res.handled || !(e.ctrlKey || e.metaKey)) e.stopPropagation();
    apply(res);
    canvas.style.cursor = editor.spaceDown ? "grab" : canvas.style.cursor;
  });
  root.addEventListener("keyup", (e) => {
    if (e.target === thresholdInput) return;
    const res = editor.keyUp(mods(e));
    if (res.handled) e.preventDefault();
    if (!(e.ctrlKey || e.metaKey)) e.stopPropagation();
    apply(res);
  });
  root.addEventListener("blur", () => {
    // a key released outside the widget must not leave Space "held"
    editor.spaceDown = false;
    if (editor.nudge) apply({ handled: true, commands: editor._commitNudge() });
  });

  // the slider's own keys (arrows, Home, End) move it; JupyterLab must not see them
  for (const type of ["keydown", "keyup"]) thresholdInput.addEventListener(type, (e) => e.stopPropagation());
  thresholdInput.addEventListener("input", () => {
    editor.setThreshold(Number(thresholdInput.value));
    renderer.invalidate();
    refreshChrome();
  });
  thresholdInput.addEventListener("change", () => {
    model.set("threshold", Number(thresholdInput.value));
    model.save_changes();
  });

  function resize() {
    const width = stage.clientWidth || 640;
    const height = Number(model.get("height")) || 560;
    stage.style.height = `${height}px`;
    renderer.resize(width, height);
    editor.setCanvasSize(renderer.cssW, renderer.cssH);
    renderer.invalidate();
  }
  const observer = new ResizeObserver(() => resize());
  observer.observe(stage);

  // ------------------------------------------------------------- startup
  editor.setCategories(model.get("categories") || []);
  editor.setThreshold(model.get("threshold"));
  editor.setTool(model.get("tool") || "box");
  editor.setMaskMode(model.get("mask_mode"));
  resize();
  sync();
  model.send({ type: "ready" }); // the kernel (re)sends the current and the next image
  started = true;

  return () => {
    observer.disconnect();
    for (const [event, fn] of listeners) model.off(event, fn);
  };
}

export default { render };
