/* Marconi pages: small shared helpers (no framework). Exposes window.Marconi. */
"use strict";

(function () {
  /** An error from the API (or the network) with a message meant for people. */
  class ApiProblem extends Error {
    constructor(message, status, body) {
      super(message);
      this.status = status || 0;
      this.body = body || null;
    }
  }

  /** Fetch JSON; resolve with the parsed body on 2xx, reject with an ApiProblem otherwise. */
  async function fetchJSON(url, options) {
    let response;
    try {
      response = await fetch(url, Object.assign({ headers: { Accept: "application/json" } }, options || {}));
    } catch (err) {
      if (err && err.name === "AbortError") throw err;
      throw new ApiProblem("Could not reach the Marconi server. Check your connection and try again.", 0);
    }
    let body = null;
    const type = response.headers.get("Content-Type") || "";
    if (type.includes("json")) {
      try { body = await response.json(); } catch (_) { body = null; }
    }
    if (!response.ok) {
      let message = body && body.error ? body.error : `The server answered ${response.status} ${response.statusText}.`;
      if (response.status === 413 && !(body && body.error)) message = "That file is too large for the server.";
      throw new ApiProblem(message, response.status, body);
    }
    if (body === null) throw new ApiProblem("The server sent an answer this page cannot read.", response.status);
    return body;
  }

  /** Create an element: el("a", {href: "…", class: "x"}, ["text", childNode]). Text is never parsed as HTML. */
  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of [].concat(children || [])) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  /** Return fn delayed until `ms` after the last call. */
  function debounce(fn, ms) {
    let timer = null;
    const wrapped = function (...args) {
      clearTimeout(timer);
      timer = setTimeout(() => fn.apply(this, args), ms);
    };
    wrapped.cancel = () => clearTimeout(timer);
    return wrapped;
  }

  /** "87%" from 0.8712. */
  function percent(x) {
    return `${Math.round(Math.max(0, Math.min(1, Number(x) || 0)) * 100)}%`;
  }

  /** "1.2 MB" from a byte count. */
  function filesize(n) {
    const units = ["bytes", "kB", "MB", "GB"];
    let size = n, i = 0;
    while (size >= 1000 && i < units.length - 1) { size /= 1000; i += 1; }
    return i === 0 ? `${size} bytes` : `${size.toFixed(1)} ${units[i]}`;
  }

  /** Show `message` in an error box (or hide it when empty). */
  function showError(box, message) {
    box.textContent = message || "";
    box.hidden = !message;
  }

  window.Marconi = { ApiProblem, fetchJSON, el, debounce, percent, filesize, showError };
})();
