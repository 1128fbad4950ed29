/* Reverse image search page: pick, drop, paste or photograph an image; POST it to the API; show the matches.
   A box drawn on the photo (pointer events: mouse, pen or finger) searches only that part of it (`box=x,y,w,h`). */
"use strict";

(function () {
  const { fetchJSON, el, percent, filesize, showError } = window.Marconi;

  const form = document.getElementById("search-form");
  const api = form.dataset.api;
  const similarApi = (id) => form.dataset.similarApi.replace("/0/similar", `/${id}/similar`);
  const imagePage = (id) => form.dataset.imagePage.replace("/0/page", `/${id}/page`);
  const maxBytes = Number(form.dataset.maxBytes) || 16e6;
  const dropzone = document.getElementById("dropzone");
  const inputs = [document.getElementById("photo"), document.getElementById("camera")];
  const kSelect = document.getElementById("k");
  const againButton = document.getElementById("search-again");
  const layout = document.querySelector(".search-layout");
  const preview = document.getElementById("preview");
  const previewImg = document.getElementById("preview-img");
  const previewCaption = document.getElementById("preview-caption");
  const cropArea = document.getElementById("crop-area");
  const cropBox = document.getElementById("crop-box");
  const cropControls = document.getElementById("crop-controls");
  const wholeButton = document.getElementById("whole-photo");
  const results = document.getElementById("results");
  const statusLine = document.getElementById("search-status");
  const errorBox = document.getElementById("search-error");
  const confidenceBox = document.getElementById("confidence");
  const meter = document.getElementById("confidence-meter");
  const confidenceValue = document.getElementById("confidence-value");
  const confidenceMessage = document.getElementById("confidence-message");
  const grid = document.getElementById("matches");
  const urlInput = document.getElementById("image-url");      // absent when the server does not fetch URLs
  const urlButton = document.getElementById("url-search");
  const textInput = document.getElementById("text-query");
  const textButton = document.getElementById("text-search");
  const suggestions = document.getElementById("word-suggestions");
  const wordsApi = form.dataset.wordsApi;

  const SHRINK_BYTES = 2e6;       // photos above this size, or
  const SHRINK_PIXELS = 2048 * 2048; // above this many pixels, are shrunk before upload
  const SHRINK_SIDE = 1600;
  const REVEAL_PX = 160;          // a first match showing less than this much of itself is scrolled into view

  let current = null;      // {blob, name, width, height}, {url} or {similar: image id} being searched
  let region = null;       // the box drawn on the photo, as fractions {x, y, w, h} of it; null: the whole photo
  let drag = null;         // the box being drawn: {x0, y0, x1, y1} in fractions
  let previewUrl = null;
  let inFlight = null;     // AbortController of the running search

  function clearResults() {
    grid.replaceChildren();
    confidenceBox.hidden = true;
    showError(errorBox, "");
  }

  /** Take the photo away from beside the results (nothing is being searched). */
  function clearPreview() {
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = null;
    offerRegion(false);
    previewImg.onload = null;
    previewImg.onerror = null;
    previewImg.removeAttribute("src");
    previewImg.alt = "Your photo";
    previewCaption.textContent = "";
    preview.hidden = true;
    layout.classList.remove("has-preview");
  }

  /** A query refused (by this page or the server): say why, and leave no earlier photo or results beside the
      message, which would read as the answer to it. The upload panel opens again for the next try. */
  function refuse(message) {
    clearResults();
    clearPreview();
    current = null;
    againButton.disabled = true;
    form.classList.remove("searched");
    statusLine.textContent = "";
    showError(errorBox, message);
  }

  /** After a new query's answer: bring the results into view when the first match starts below the first screen
      or close to its bottom (on a phone the form and the photo fill it), or when they start above it. */
  function revealResults() {
    const first = grid.firstElementChild || results;
    if (first.getBoundingClientRect().top > window.innerHeight - REVEAL_PX || results.getBoundingClientRect().top < 0) {
      results.scrollIntoView({ block: "start" });
    }
  }

  /** Shrink big photos in the browser (keeps uploads from phones fast); fall back to the original.
      Resolves to {blob, width, height}: the size of what is sent (null for the original, which the preview shows). */
  async function prepare(file) {
    const original = { blob: file, width: null, height: null };
    if (!("createImageBitmap" in window)) return original;
    let bitmap;
    try {
      bitmap = await createImageBitmap(file);
    } catch (_) {
      return original; // a format the browser cannot decode (e.g. TIFF): let the server try
    }
    const pixels = bitmap.width * bitmap.height;
    if (file.size <= SHRINK_BYTES && pixels <= SHRINK_PIXELS) {
      bitmap.close();
      return original;
    }
    const scale = Math.min(1, SHRINK_SIDE / Math.max(bitmap.width, bitmap.height));
    const canvas = document.createElement("canvas");
    canvas.width = Math.max(1, Math.round(bitmap.width * scale));
    canvas.height = Math.max(1, Math.round(bitmap.height * scale));
    canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    bitmap.close();
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.9));
    return blob && blob.size < file.size ? { blob, width: canvas.width, height: canvas.height } : original;
  }

  // ------------------------------------------------------------------ a box on the photo (region search)
  const clamp01 = (v) => Math.max(0, Math.min(1, v));

  /** Where the photo's pixels are drawn, in viewport px (the image keeps its proportions inside its frame). */
  function photoRect() {
    const r = previewImg.getBoundingClientRect();
    const boxW = previewImg.clientWidth, boxH = previewImg.clientHeight;
    const scale = Math.min(boxW / previewImg.naturalWidth, boxH / previewImg.naturalHeight);
    const width = previewImg.naturalWidth * scale, height = previewImg.naturalHeight * scale;
    return { left: r.left + previewImg.clientLeft + (boxW - width) / 2,
      top: r.top + previewImg.clientTop + (boxH - height) / 2, width, height };
  }

  const canDraw = () => cropArea.classList.contains("drawable") && Boolean(current && (current.blob || current.url)) &&
    !previewImg.hidden && previewImg.complete && previewImg.naturalWidth > 0;

  /** Show the drawn box (or the one being drawn) over the photo; the button says whether the whole photo is used. */
  function showRegion() {
    const shown = drag ? normalise(drag) : region;
    cropBox.hidden = !shown;
    wholeButton.setAttribute("aria-pressed", String(!region));
    if (!shown) return;
    const r = photoRect(), area = cropArea.getBoundingClientRect();
    Object.assign(cropBox.style, { left: `${r.left - area.left + shown.x * r.width}px`,
      top: `${r.top - area.top + shown.y * r.height}px`, width: `${shown.w * r.width}px`,
      height: `${shown.h * r.height}px` });
  }

  function normalise(d) {
    return { x: Math.min(d.x0, d.x1), y: Math.min(d.y0, d.y1), w: Math.abs(d.x1 - d.x0), h: Math.abs(d.y1 - d.y0) };
  }

  function pointAt(event) {
    const r = photoRect();
    return [clamp01((event.clientX - r.left) / r.width), clamp01((event.clientY - r.top) / r.height)];
  }

  /** Forget the box (a new photo, or the whole photo asked for). */
  function clearRegion() {
    region = null;
    drag = null;
    showRegion();
  }

  /** The box in pixels of the photo as sent: [x, y, w, h]. */
  function boxPixels() {
    const width = current.width || previewImg.naturalWidth, height = current.height || previewImg.naturalHeight;
    const x = Math.round(region.x * width), y = Math.round(region.y * height);
    return [x, y, Math.max(1, Math.round((region.x + region.w) * width) - x),
      Math.max(1, Math.round((region.y + region.h) * height) - y)];
  }

  cropArea.addEventListener("pointerdown", (event) => {
    if (!canDraw() || event.button !== 0) return;
    event.preventDefault();
    const [x, y] = pointAt(event);
    drag = { x0: x, y0: y, x1: x, y1: y };
    cropArea.setPointerCapture(event.pointerId);
    showRegion();
  });
  cropArea.addEventListener("pointermove", (event) => {
    if (!drag) return;
    [drag.x1, drag.y1] = pointAt(event);
    showRegion();
  });
  cropArea.addEventListener("pointerup", (event) => {
    if (!drag) return;
    [drag.x1, drag.y1] = pointAt(event);
    const drawn = normalise(drag), r = photoRect();
    drag = null;
    if (drawn.w * r.width < 8 || drawn.h * r.height < 8) { // a tap or a slip, not a box: keep what was there
      showRegion();
      return;
    }
    region = drawn;
    showRegion();
    search();
  });
  cropArea.addEventListener("pointercancel", () => {
    drag = null;
    showRegion();
  });
  wholeButton.addEventListener("click", () => {
    if (!region) return;
    clearRegion();
    search();
  });
  window.addEventListener("resize", showRegion);

  /** Offer the box for photos (uploaded or fetched); not for images of the collection or words. */
  function offerRegion(on) {
    clearRegion();
    cropControls.hidden = !on;
    cropArea.classList.toggle("drawable", on);
  }

  function looksLikeImage(file) {
    if (file.type) return file.type.startsWith("image/");
    return /\.(jpe?g|png|gif|webp|bmp|tiff?|heic|avif)$/i.test(file.name || "");
  }

  async function choose(file) {
    if (!file) return;
    clearResults();
    remember(null);
    offerRegion(false);
    if (!looksLikeImage(file)) {
      refuse(`“${file.name || "That file"}” is not an image. Choose a photo (JPEG, PNG, WebP…).`);
      return;
    }
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = URL.createObjectURL(file);
    previewImg.hidden = false;
    previewImg.src = previewUrl;
    previewImg.alt = `Your photo: ${file.name || "pasted image"}`;
    previewCaption.textContent = `${file.name || "Pasted image"} · ${filesize(file.size)}`;
    previewImg.onload = () => {
      previewCaption.textContent = `${file.name || "Pasted image"} · ${previewImg.naturalWidth}×` +
        `${previewImg.naturalHeight} px · ${filesize(file.size)}`;
    };
    previewImg.onerror = () => {
      previewImg.hidden = true;
      previewCaption.textContent = `${file.name || "Pasted image"} · ${filesize(file.size)} · no preview in this browser`;
    };
    preview.hidden = false;
    layout.classList.add("has-preview");

    statusLine.textContent = "Preparing your photo…";
    const { blob, width, height } = await prepare(file);
    if (blob.size > maxBytes) {
      refuse(`That photo is ${filesize(blob.size)}; the limit is ${filesize(maxBytes)}.`);
      return;
    }
    const name = blob === file ? (file.name || "photo") : (file.name || "photo").replace(/\.[^.]*$/, "") + ".jpg";
    current = { blob, name, width, height };
    offerRegion(true);
    againButton.disabled = false;
    search({ reveal: true });
  }

  /** Search for the current query; `reveal`: a new query, whose results are scrolled into view when off-screen. */
  async function search({ reveal = false } = {}) {
    if (!current) return;
    if (inFlight) inFlight.abort();
    const controller = new AbortController();
    inFlight = controller;
    let request;
    let target = api;
    if (current.similar) {
      target = `${similarApi(current.similar)}?k=${encodeURIComponent(kSelect.value)}`;
      request = { signal: controller.signal };
    } else if (current.text) {
      target = `${api}?q=${encodeURIComponent(current.text)}&k=${encodeURIComponent(kSelect.value)}`;
      request = { signal: controller.signal };
    } else if (current.url) {
      const body = { url: current.url, k: Number(kSelect.value) };
      if (region) body.box = boxPixels();
      request = { method: "POST", signal: controller.signal,
        headers: { Accept: "application/json", "Content-Type": "application/json" }, body: JSON.stringify(body) };
    } else {
      const data = new FormData();
      data.append("image", current.blob, current.name);
      data.append("k", kSelect.value);
      if (region) data.append("box", boxPixels().join(","));
      request = { method: "POST", body: data, signal: controller.signal };
    }
    showError(errorBox, "");
    statusLine.textContent = current.url ? "Fetching the image and searching…" : "Searching…";
    if (region) statusLine.textContent = "Searching the part of the photo inside your box…";
    if (current.similar) statusLine.textContent = "Finding more like this…";
    results.setAttribute("aria-busy", "true");
    try {
      const body = await fetchJSON(target, request);
      render(body);
      if (reveal) revealResults();
    } catch (err) {
      if (err.name === "AbortError") return;
      if (err.status >= 400 && err.status < 500) {
        refuse(err.message); // this query will not work: nothing of it (or of an earlier one) stays on the page
        return;
      }
      clearResults(); // the server or the network failed: keep the photo, "Search again" retries it
      statusLine.textContent = "";
      showError(errorBox, err.message);
    } finally {
      if (inFlight === controller) {
        inFlight = null;
        results.removeAttribute("aria-busy");
      }
    }
  }

  function link(href, text, label) {
    return href ? el("a", { href, rel: "noopener noreferrer", "aria-label": label || null }, text) : null;
  }

  function card(m) {
    const label = m.label || `Image ${m.id}`;
    const host = (() => { try { return new URL(m.page_url).hostname; } catch (_) { return ""; } })();
    const pageName = host.endsWith("commons.wikimedia.org") ? "Commons" : "Source page";
    const links = [
      link(m.wikidata_url, "Wikidata", `${label} on Wikidata`),
      link(m.page_url, pageName, `${label}: ${pageName}`),
      m.source_url && m.source_url !== m.page_url ? link(m.source_url, "Original", `${label}: original file`) : null,
      m.licence ? (m.licence_url ? link(m.licence_url, m.licence, `Licence: ${m.licence}`)
        : el("span", {}, m.licence)) : null,
    ].filter(Boolean);
    const credit = m.author || m.attribution;
    const sim = Math.max(0, Math.min(1, m.similarity || 0));
    const width = `${(sim * 100).toFixed(1)}%`;
    return el("li", { class: "match", "data-id": m.id }, [
      el("a", { class: "thumb", href: imagePage(m.id),
        "aria-label": `${label} (image ${m.id}): tags and similar images` }, [
        // animated images play: the card shows the original file (thumbnails are still JPEGs)
        el("img", { src: m.animated ? m.image_url : m.thumbnail_url, alt: label, loading: "lazy", decoding: "async",
          width: m.width || null, height: m.height || null }),
      ]),
      el("div", { class: "body" }, [
        el("h3", {}, label),
        el("span", { class: "sim" }, `${percent(sim)} similar`),
        el("div", { class: "sim-bar", "aria-hidden": "true" }, [el("span", { style: `width:${width}` })]),
        m.description ? el("p", { class: "desc" }, m.description) : null,
        m.tags && m.tags.length ? el("p", { class: "tags", "aria-label": "Tags" }, m.tags.join(" · ")) : null,
        credit ? el("p", { class: "credit" }, credit) : null,
        links.length ? el("p", { class: "links" }, links) : null,
        el("button", { class: "button small more-like", type: "button", "aria-label": `More like this: ${label} (image ${m.id})`,
          onclick: () => moreLike(m, label) }, "More like this"),
      ]),
    ]);
  }

  /** Search with a match from the collection as the query (its stored vectors; nothing is uploaded). */
  function moreLike(m, label) {
    clearResults();
    remember(null);
    offerRegion(false);
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = null;
    previewImg.hidden = false;
    previewImg.onload = null;
    previewImg.onerror = null;
    previewImg.src = m.image_url;
    previewImg.alt = `${label}, image ${m.id} from the collection`;
    previewCaption.textContent = `${label} · image ${m.id} from the collection`;
    preview.hidden = false;
    layout.classList.add("has-preview");
    current = { similar: m.id };
    againButton.disabled = false;
    search({ reveal: true });
    preview.scrollIntoView({ block: "nearest" });
  }

  const capitalise = (text) => text.charAt(0).toUpperCase() + text.slice(1);

  function render(body) {
    const matches = body.matches || [];
    meter.value = body.confidence;
    confidenceValue.textContent = percent(body.confidence);
    confidenceMessage.textContent = body.confident
      ? "Good match: the closest pictures are very likely of the same kind of thing."
      : `No good match. ${capitalise(body.message || "the closest images are shown anyway.")}`;
    confidenceBox.classList.toggle("notice", !body.confident);
    confidenceBox.classList.toggle("warn", !body.confident);
    confidenceBox.hidden = false;
    grid.replaceChildren(...matches.map(card));
    form.classList.toggle("searched", matches.length > 0);
    if (!matches.length) {
      statusLine.textContent = "No images to compare with yet.";
    } else if (body.confident) {
      statusLine.textContent = `${matches.length} matches, confidence ${percent(body.confidence)}. ` +
        `Best: ${matches[0].label || "unlabelled"}.`;
    } else {
      statusLine.textContent = `Nothing matches well (confidence ${percent(body.confidence)}); ` +
        `showing the ${matches.length} closest images anyway.`;
    }
    const box = body.query && body.query.box;
    if (box) statusLine.textContent += ` Only the box you drew was searched (${box[2]}×${box[3]} px).`;
  }

  /** Keep a words query in the address (?q=…), so it can be shared and Back from an image page repeats it. */
  function remember(text) {
    const url = new URL(window.location.href);
    if (text) url.searchParams.set("q", text);
    else url.searchParams.delete("q");
    if (url.href !== window.location.href) window.history.replaceState(null, "", url);
  }

  /** Search by words: no preview; the words are the query. */
  function chooseText(raw) {
    const text = (raw || "").trim();
    clearResults();
    remember(text);
    if (!text) {
      refuse("Type a few words, for example 'a red car'.");
      return;
    }
    clearPreview();
    current = { text };
    againButton.disabled = false;
    search({ reveal: true });
  }

  /** Suggest words near the last word typed (GET /api/words/similar), as a datalist under the box. */
  let suggestTimer = null;
  function suggest(raw) {
    const last = (raw || "").trim().split(/\s+/).pop();
    clearTimeout(suggestTimer);
    if (!suggestions || !last || last.length < 3) return;
    suggestTimer = setTimeout(async () => {
      try {
        const body = await fetchJSON(`${wordsApi}?q=${encodeURIComponent(last.toLowerCase())}&k=6`, {});
        const stem = raw.trim().slice(0, raw.trim().length - last.length);
        suggestions.replaceChildren(...body.words.map((w) => el("option", { value: stem + w.word })));
      } catch (err) {
        suggestions.replaceChildren();
      }
    }, 250);
  }

  if (textInput && textButton) {
    textButton.addEventListener("click", () => chooseText(textInput.value));
    textInput.addEventListener("input", () => suggest(textInput.value));
    textInput.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        chooseText(textInput.value);
      }
    });
  }

  /** Search by the address of an image on the web: the server fetches it (the preview is the browser's own). */
  function chooseUrl(raw) {
    const text = (raw || "").trim();
    clearResults();
    remember(null);
    if (!/^https?:\/\/\S+$/i.test(text)) {
      refuse("Enter the full address of an image, beginning with http or https.");
      return;
    }
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = null;
    previewImg.hidden = false;
    previewImg.src = text;
    previewImg.alt = "The image at the address you gave";
    previewCaption.textContent = text;
    previewImg.onload = () => {
      previewCaption.textContent = `${text} · ${previewImg.naturalWidth}×${previewImg.naturalHeight} px`;
    };
    previewImg.onerror = () => {
      previewImg.hidden = true;
      previewCaption.textContent = `${text} · no preview in this browser`;
    };
    preview.hidden = false;
    layout.classList.add("has-preview");
    offerRegion(true);
    current = { url: text };
    againButton.disabled = false;
    search({ reveal: true });
  }

  if (urlInput && urlButton) {
    urlButton.addEventListener("click", () => chooseUrl(urlInput.value));
    urlInput.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        chooseUrl(urlInput.value);
      }
    });
  }

  for (const input of inputs) {
    input.addEventListener("change", () => {
      const file = input.files && input.files[0];
      choose(file);
      input.value = ""; // choosing the same file again should search again
    });
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    search();
  });
  kSelect.addEventListener("change", () => { if (current) search(); });

  // Drag and drop anywhere on the page; highlight the drop zone while dragging.
  let dragDepth = 0;
  const hasFiles = (event) => Array.from(event.dataTransfer ? event.dataTransfer.types : []).includes("Files");
  document.addEventListener("dragenter", (event) => {
    if (!hasFiles(event)) return;
    dragDepth += 1;
    dropzone.classList.add("dragging");
  });
  document.addEventListener("dragleave", () => {
    dragDepth = Math.max(0, dragDepth - 1);
    if (!dragDepth) dropzone.classList.remove("dragging");
  });
  document.addEventListener("dragover", (event) => {
    if (hasFiles(event)) event.preventDefault();
  });
  document.addEventListener("drop", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    dragDepth = 0;
    dropzone.classList.remove("dragging");
    choose(event.dataTransfer.files[0]);
  });
  document.addEventListener("paste", (event) => {
    const file = Array.from((event.clipboardData && event.clipboardData.files) || [])[0];
    if (file) {
      event.preventDefault();
      choose(file);
    }
  });

  // A words query in the address (/search?q=leopard, e.g. from a tag on an image page) runs on load.
  const initialText = new URLSearchParams(window.location.search).get("q");
  if (initialText && initialText.trim() && textInput && api) {
    textInput.value = initialText;
    chooseText(initialText);
  }
})();
