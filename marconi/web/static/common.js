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

  /** What to tell people about a failed answer. A refusal (4xx) carries the API's own message, which says what to
      change; a server failure (5xx) gets a plain "try again" (its details, such as a database address, are for the
      logs), with the request id to quote if it keeps happening. */
  function problemMessage(status, body) {
    const rid = body && body.request_id ? ` If it keeps happening, report request id ${body.request_id}.` : "";
    if (status === 413) return "That file is too large for the server: choose a smaller one.";
    if (status === 429) return "Too many requests just now. Wait a moment and try again.";
    if (status >= 500) {
      const code = body && body.code;
      if (code === "database_unavailable" || code === "database_timeout") {
        return `Marconi's database is busy or unreachable. Try again in a few seconds.${rid}`;
      }
      // e.g. a model or word list not installed on this server: the administrator's details are in the logs
      return status === 503 ? `This is not available on this server right now.${rid}`
        : `Something went wrong on the server. Try again.${rid}`;
    }
    if (body && body.error) return String(body.error);
    return status === 404 ? "Not found: the page asked for something that does not exist."
      : "The server could not handle this request. Reload the page and try again.";
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
    if (!response.ok) throw new ApiProblem(problemMessage(response.status, body), response.status, body);
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

  /** A share in [0, 1] as a percentage that never claims more than it is: "87%" from 0.8712; one decimal from 99.5%
      ("99.6%" from 0.9956, which whole numbers would round up to 100%); ">99.9%" just below 1; "100%" only for
      exactly 1; "<1%" for a small non-zero share. The pages' Jinja filter `percent` follows the same rule. */
  function percent(x) {
    const v = Math.max(0, Math.min(1, Number(x) || 0));
    if (v === 1) return "100%";
    if (v >= 0.9995) return ">99.9%";
    if (v >= 0.995) return `${(v * 100).toFixed(1)}%`;
    if (v > 0 && v < 0.005) return "<1%";
    return `${Math.round(v * 100)}%`;
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
