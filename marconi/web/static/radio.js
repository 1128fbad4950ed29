/* Radio page: search-as-you-type seed picker (ARIA combobox), seed chips, playlist from POST /api/radio. */
"use strict";

(function () {
  const { fetchJSON, el, debounce, showError } = window.Marconi;

  const form = document.getElementById("radio-form");
  const songsApi = form.dataset.songsApi;
  const radioApi = form.dataset.radioApi;
  const maxSeeds = Number(form.dataset.maxSeeds) || 50;
  const input = document.getElementById("seed-input");
  const listbox = document.getElementById("seed-options");
  const chips = document.getElementById("seed-chips");
  const seedLive = document.getElementById("seed-live");
  const sizeInput = document.getElementById("size");
  const capInput = document.getElementById("max-per-artist");
  const varietySelect = document.getElementById("variety");
  const heading = document.getElementById("playlist-heading");
  const statusLine = document.getElementById("radio-status");
  const errorBox = document.getElementById("radio-error");
  const playlist = document.getElementById("playlist");
  const exportBar = document.getElementById("radio-export");
  const saveSpotify = document.getElementById("save-spotify");

  const MIN_QUERY = 2;
  const SUGGESTIONS = 10;

  let seeds = [];           // [{key, title, artist, ignored}]
  let options = [];         // suggestions: [{key, title, artist, has_vector}]
  let active = -1;          // index into options of the highlighted suggestion
  let suggestAbort = null;
  let radioAbort = null;
  let hasPlaylist = false;
  let shown = null;         // the request of the playlist on the page, for the export buttons

  const describe = (s) => (s.artist ? `${s.title} by ${s.artist}` : s.title || s.key);

  // ---- suggestions (combobox) -------------------------------------------------------------------------------

  function openList(open) {
    listbox.hidden = !open;
    input.setAttribute("aria-expanded", String(open));
    if (!open) setActive(-1);
  }

  function selectable(i) {
    const o = options[i];
    return Boolean(o) && o.has_vector && !seeds.some((s) => s.key === o.key);
  }

  function setActive(i) {
    active = i;
    for (const li of listbox.querySelectorAll("[role=option]")) {
      li.setAttribute("aria-selected", String(Number(li.dataset.index) === i));
    }
    if (i >= 0) {
      const li = document.getElementById(`seed-opt-${i}`);
      input.setAttribute("aria-activedescendant", li.id);
      li.scrollIntoView({ block: "nearest" });
    } else {
      input.removeAttribute("aria-activedescendant");
    }
  }

  function move(step) {
    if (!options.length) return;
    if (listbox.hidden) openList(true);
    let i = active;
    for (let n = 0; n < options.length; n += 1) {
      if (i < 0) i = step > 0 ? 0 : options.length - 1;
      else i = (i + step + options.length) % options.length;
      if (selectable(i)) { setActive(i); return; }
    }
  }

  function info(text) {
    return el("li", { class: "info", role: "option", "aria-disabled": "true", "aria-selected": "false" }, text);
  }

  function renderOptions(total, query) {
    const items = options.map((o, i) => {
      const chosen = seeds.some((s) => s.key === o.key);
      const note = chosen ? " · already chosen" : o.has_vector ? "" : " · too rare to seed a radio";
      return el("li", {
        id: `seed-opt-${i}`, role: "option", "data-index": i, "aria-selected": "false",
        "aria-disabled": selectable(i) ? null : "true",
        onmousedown: (event) => event.preventDefault(), // keep focus in the input
        onclick: () => { if (selectable(i)) pick(i); },
      }, [el("span", { class: "opt-title" }, o.title || o.key),
        el("span", { class: "opt-artist" }, `${o.artist || "unknown artist"}${note}`)]);
    });
    if (!options.length) items.push(info(`No songs match “${query}”.`));
    else if (total > options.length) items.push(info(`${options.length} of ${total} shown: keep typing to narrow.`));
    listbox.replaceChildren(...items);
    openList(true);
    const first = options.findIndex((_, i) => selectable(i));
    setActive(first);
    seedLive.textContent = options.length
      ? `${total} song${total === 1 ? "" : "s"} found. Use the up and down arrow keys to choose, Enter to add.`
      : `No songs match ${query}.`;
  }

  const suggest = debounce(async () => {
    const query = input.value.trim();
    if (suggestAbort) suggestAbort.abort();
    if (query.length < MIN_QUERY) {
      options = [];
      openList(false);
      return;
    }
    const controller = new AbortController();
    suggestAbort = controller;
    const url = `${songsApi}?${new URLSearchParams({ q: query, limit: String(SUGGESTIONS) })}`;
    try {
      const body = await fetchJSON(url, { signal: controller.signal });
      if (controller.signal.aborted || input.value.trim() !== query) return;
      options = body.songs || [];
      renderOptions(body.total || 0, query);
    } catch (err) {
      if (err.name === "AbortError") return;
      options = [];
      listbox.replaceChildren(info(err.message));
      openList(true);
    }
  }, 200);

  function pick(i) {
    const o = options[i];
    if (!o) return;
    if (seeds.length >= maxSeeds) {
      seedLive.textContent = `At most ${maxSeeds} seed songs.`;
      return;
    }
    seeds.push({ key: o.key, title: o.title, artist: o.artist, ignored: false });
    input.value = "";
    options = [];
    openList(false);
    renderChips();
    seedLive.textContent = `Added ${describe(o)}. ${seeds.length} seed song${seeds.length === 1 ? "" : "s"}.`;
    seedsChanged();
  }

  input.addEventListener("input", () => suggest());
  input.addEventListener("keydown", (event) => {
    switch (event.key) {
      case "ArrowDown":
        event.preventDefault();
        if (listbox.hidden && input.value.trim().length >= MIN_QUERY && !options.length) suggest();
        move(1);
        break;
      case "ArrowUp":
        event.preventDefault();
        move(-1);
        break;
      case "Enter":
        if (!listbox.hidden && active >= 0) {
          event.preventDefault();
          pick(active);
        } else if (input.value.trim()) {
          event.preventDefault(); // typing, not submitting: wait for suggestions
        }
        break;
      case "Escape":
        if (!listbox.hidden) {
          event.preventDefault();
          openList(false);
        } else if (input.value) {
          input.value = "";
        }
        break;
      case "Backspace":
        if (!input.value && seeds.length) removeSeed(seeds.length - 1, false);
        break;
      default:
    }
  });
  input.addEventListener("blur", () => openList(false));
  input.addEventListener("focus", () => { if (options.length) openList(true); });

  // ---- chips -----------------------------------------------------------------------------------------------

  function renderChips() {
    const focused = document.activeElement && document.activeElement.closest("#seed-chips li");
    const focusedKey = focused ? focused.dataset.key : null;
    chips.replaceChildren(...seeds.map((s, i) => el("li", {
      class: s.ignored ? "chip ignored" : "chip", "data-key": s.key,
      title: s.ignored ? "Not in the song model: this seed is ignored" : null,
    }, [
      el("span", { class: "chip-text" }, [s.title || s.key, s.artist ? el("span", { class: "chip-artist" }, ` · ${s.artist}`) : null]),
      el("button", { type: "button", "aria-label": `Remove ${describe(s)}`, onclick: () => removeSeed(i, true) }, "×"),
    ])));
    if (focusedKey) { // re-rendering must not drop keyboard focus
      const again = Array.from(chips.children).find((li) => li.dataset.key === focusedKey);
      if (again) again.querySelector("button").focus();
    }
  }

  function removeSeed(i, fromButton) {
    const [gone] = seeds.splice(i, 1);
    renderChips();
    if (fromButton) {
      const buttons = chips.querySelectorAll("button");
      (buttons[Math.min(i, buttons.length - 1)] || input).focus();
    }
    seedLive.textContent = `Removed ${describe(gone)}. ${seeds.length} seed song${seeds.length === 1 ? "" : "s"} left.`;
    seedsChanged();
  }

  // ---- the radio ---------------------------------------------------------------------------------------------

  const autoRefresh = debounce(() => makeRadio(), 250);

  function seedsChanged() {
    if (!seeds.length) {
      autoRefresh.cancel();
      if (radioAbort) radioAbort.abort();
      hasPlaylist = false;
      showExport(null);
      playlist.replaceChildren();
      showError(errorBox, "");
      statusLine.textContent = "Add at least one seed song to start.";
      history.replaceState(null, "", location.pathname);
      return;
    }
    if (hasPlaylist) autoRefresh();
  }

  function readInt(field, label) {
    const raw = field.value.trim();
    if (raw === "") return null;
    const n = Number(raw);
    const max = Number(field.max);
    if (!Number.isInteger(n) || n < 1 || n > max) throw new Error(`${label} must be a whole number from 1 to ${max}.`);
    return n;
  }

  function request() {
    const size = readInt(sizeInput, "Songs");
    return { seeds: seeds.map((s) => s.key), size: size === null ? 25 : size,
      max_per_artist: readInt(capInput, "Max per artist"), variety: Number(varietySelect.value) || 0 };
  }

  function queryOf(req) {
    const params = new URLSearchParams();
    req.seeds.forEach((k) => params.append("seed", k));
    params.set("size", String(req.size));
    if (req.max_per_artist) params.set("max_per_artist", String(req.max_per_artist));
    if (req.variety) params.set("variety", String(req.variety));
    return params;
  }

  function remember(req) {
    history.replaceState(null, "", `${location.pathname}?${queryOf(req)}`);
    showExport(req);
  }

  // ---- take it away: playlist files (the same POST, another format) and "Save to Spotify" ---------------------

  function showExport(req) {
    shown = req;
    exportBar.hidden = !req;
    if (saveSpotify && req) saveSpotify.href = `${saveSpotify.dataset.login}?${queryOf(req)}`;
  }

  function filenameOf(disposition, format) {
    const match = /filename="?([^";]+)"?/.exec(disposition || "");
    return match ? match[1] : `marconi-radio.${format}`;
  }

  async function download(format) {
    if (!shown) return;
    showError(errorBox, "");
    let response;
    try {
      response = await fetch(`${radioApi}?format=${encodeURIComponent(format)}`, {
        method: "POST", body: JSON.stringify(shown), headers: { "Content-Type": "application/json" },
      });
    } catch (_) {
      showError(errorBox, "Could not reach the Marconi server. Check your connection and try again.");
      return;
    }
    if (!response.ok) {
      const body = await response.json().catch(() => null);
      showError(errorBox, (body && body.error) || `The server answered ${response.status}.`);
      return;
    }
    const url = URL.createObjectURL(await response.blob());
    const link = el("a", { href: url, download: filenameOf(response.headers.get("Content-Disposition"), format),
      hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  for (const button of exportBar.querySelectorAll("button[data-format]")) {
    button.addEventListener("click", () => download(button.dataset.format));
  }

  async function makeRadio() {
    autoRefresh.cancel();
    let req;
    try {
      req = request();
    } catch (err) {
      showError(errorBox, err.message);
      return;
    }
    if (!req.seeds.length) {
      showError(errorBox, "Add at least one seed song first: type in the Seed songs box.");
      input.focus();
      return;
    }
    if (radioAbort) radioAbort.abort();
    const controller = new AbortController();
    radioAbort = controller;
    showError(errorBox, "");
    statusLine.textContent = "Tuning in…";
    playlist.setAttribute("aria-busy", "true");
    try {
      const body = await fetchJSON(radioApi, {
        method: "POST", body: JSON.stringify(req), signal: controller.signal,
        headers: { "Content-Type": "application/json", Accept: "application/json" },
      });
      render(body);
      remember(req);
    } catch (err) {
      if (err.name === "AbortError") return;
      hasPlaylist = false;
      showExport(null);
      playlist.replaceChildren();
      statusLine.textContent = "";
      const unknown = err.body && err.body.unknown;
      if (unknown && unknown.length) {
        seeds.forEach((s) => { if (unknown.includes(s.key)) s.ignored = true; });
        renderChips();
      }
      showError(errorBox, err.message);
    } finally {
      if (radioAbort === controller) {
        radioAbort = null;
        playlist.removeAttribute("aria-busy");
      }
    }
  }

  function render(body) {
    const known = new Map(body.seeds.map((s) => [s.key, s]));
    const ignored = new Set(body.ignored_seeds || []);
    seeds = seeds.map((s) => Object.assign({}, s, known.get(s.key) || {}, { ignored: ignored.has(s.key) }));
    renderChips();
    playlist.replaceChildren(...body.playlist.map(song));
    hasPlaylist = true;
    const names = body.seeds.map(describe).join("; ");
    let text = `${body.size} song${body.size === 1 ? "" : "s"} from ${names}.`;
    if (ignored.size) text += ` Ignored (too rare to be in the model): ${seeds.filter((s) => s.ignored).map(describe).join("; ")}.`;
    statusLine.textContent = text;
  }

  function song(s) {
    const name = describe(s);
    return el("li", { class: "song", "data-key": s.key, "data-score": s.score }, [
      el("div", { class: "song-main" }, [
        el("div", { class: "song-title" }, s.title || s.key),
        el("div", { class: "song-artist" }, s.artist || "unknown artist"),
      ]),
      el("div", { class: "song-actions" }, [
        s.spotify_url ? el("a", { class: "spotify", href: s.spotify_url, target: "_blank", rel: "noopener noreferrer",
          "aria-label": `Open ${name} in Spotify (new tab)` }, "Spotify ↗") : null,
        el("button", { type: "button", class: "button small", "aria-label": `Start a new radio from ${name}`,
          onclick: () => regenerateFrom(s) }, "Radio from this"),
      ]),
    ]);
  }

  function regenerateFrom(s) {
    seeds = [{ key: s.key, title: s.title, artist: s.artist, ignored: false }];
    renderChips();
    seedLive.textContent = `New radio from ${describe(s)}.`;
    heading.focus();
    makeRadio();
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    makeRadio();
  });
  for (const field of [sizeInput, capInput, varietySelect]) {
    field.addEventListener("change", () => { if (hasPlaylist) autoRefresh(); });
  }

  // ---- restore a radio from the URL (?seed=…&seed=…&size=…) so playlists can be bookmarked and shared --------
  const params = new URLSearchParams(location.search);
  const fromUrl = params.getAll("seed").filter(Boolean).slice(0, maxSeeds);
  if (params.get("size")) sizeInput.value = params.get("size");
  if (params.get("max_per_artist")) capInput.value = params.get("max_per_artist");
  if ([...varietySelect.options].some((o) => o.value === params.get("variety"))) {
    varietySelect.value = params.get("variety");
  }
  if (fromUrl.length) {
    seeds = fromUrl.map((key) => ({ key, title: key, artist: "", ignored: false }));
    renderChips();
    makeRadio();
  }
  heading.setAttribute("tabindex", "-1");
})();
