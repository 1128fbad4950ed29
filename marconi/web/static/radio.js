/* Radio page: one entry for songs, artists, tags or a prompt (ARIA combobox with suggestions), chips, the playlist
   from POST /api/radio with reasons, Spotify links, skips (exclude) and exports; the URL always holds the radio. */
"use strict";

(function () {
  const { fetchJSON, el, debounce, showError } = window.Marconi;
  const $ = (id) => document.getElementById(id);

  const form = $("radio-form");
  const api = { songs: form.dataset.songsApi, radio: form.dataset.radioApi,
    artists: form.dataset.artistsApi || null, tags: form.dataset.tagsApi || null };
  const v2 = Boolean(api.artists); // artist, tag and prompt radio: the server has them when it has /api/artists
  const maxSeeds = Number(form.dataset.maxSeeds) || 50;
  const maxExclude = Number(form.dataset.maxExclude) || 200;
  const input = $("seed-input");
  const listbox = $("seed-options");
  const chips = $("seed-chips");
  const seedLive = $("seed-live");
  const sizeInput = $("size");
  const capInput = $("max-per-artist");
  const varietySelect = $("variety");
  const modeSelect = $("mode");
  const excludeBox = $("exclude-box");
  const excludeChips = $("exclude-chips");
  const heading = $("playlist-heading");
  const statusLine = $("radio-status");
  const notice = $("radio-notice");
  const errorBox = $("radio-error");
  const playlist = $("playlist");
  const exportBar = $("radio-export");
  const saveSpotify = $("save-spotify");

  const MIN_QUERY = 2;
  const SUGGESTIONS = 10;
  const NAMED = 4; // artists and tags offered above the songs
  const MODES = ["easy", "medium", "hard"];

  // A pick is {kind: "song", key, title, artist, ignored} | {kind: "artist" | "tag", name, songs} | {kind: "prompt", text}
  let picks = [];
  let exclude = [];         // [{value: track key or artist name, label}]
  let options = [];         // suggestions, picks-to-be
  let active = -1;          // index into options of the highlighted suggestion
  let suggestAbort = null;
  let radioAbort = null;
  let hasPlaylist = false;
  let shown = null;         // the request of the playlist on the page, for the export buttons
  let refocus = null;       // after a skip: the playlist position whose Skip button gets focus back
  let leftOut = "";         // what a shared link asked for that this server cannot make, said under the playlist

  const describe = (s) => (s.artist ? `${s.title} by ${s.artist}` : s.title || s.key);
  const idOf = (p) => `${p.kind}:${(p.key || p.name || p.text || "").toLowerCase()}`;
  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
  const KIND_LABEL = { artist: "Artist", tag: "Tag", prompt: "Prompt" };

  function label(p) {
    if (p.kind === "song") return describe(p);
    if (p.kind === "prompt") return `prompt “${p.text}”`;
    return `${p.kind} ${p.name}`;
  }

  // ---- suggestions (combobox) -------------------------------------------------------------------------------

  function openList(open) {
    listbox.hidden = !open;
    input.setAttribute("aria-expanded", String(open));
    if (!open) setActive(-1);
  }

  const chosen = (o) => picks.some((p) => idOf(p) === idOf(o));
  function selectable(i) {
    const o = options[i];
    return Boolean(o) && (o.kind !== "song" || o.has_vector) && !chosen(o);
  }

  function setActive(i) {
    active = i;
    for (const li of listbox.querySelectorAll("[role=option]")) {
      li.setAttribute("aria-selected", String(Number(li.dataset.index) === i));
    }
    if (i >= 0) {
      const li = $(`seed-opt-${i}`);
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

  function optionText(o) {
    const note = chosen(o) ? " · already chosen" : "";
    if (o.kind === "song") {
      const rare = o.has_vector ? "" : " · too rare to seed a radio";
      return [o.title || o.key, `${o.artist || "unknown artist"}${note || rare}`];
    }
    if (o.kind === "prompt") return [`Use as a prompt: “${o.text}”`, "artist:(…) tag:(…) #mode easy|medium|hard"];
    return [`${KIND_LABEL[o.kind]}: ${o.name}`, `${plural(o.songs, "song")}${note}`];
  }

  function renderOptions(total, query) {
    const items = options.map((o, i) => {
      const [main, sub] = optionText(o);
      return el("li", {
        id: `seed-opt-${i}`, role: "option", class: `opt-${o.kind}`, "data-index": i, "data-kind": o.kind,
        "aria-selected": "false", "aria-disabled": selectable(i) ? null : "true",
        onmousedown: (event) => event.preventDefault(), // keep focus in the input
        onclick: () => { if (selectable(i)) pick(i); },
      }, [el("span", { class: "opt-title" }, main), el("span", { class: "opt-artist" }, sub)]);
    });
    const songs = options.filter((o) => o.kind === "song").length;
    if (!options.length) items.push(info(`Nothing matches “${query}”.`));
    else if (total > songs && songs) items.push(info(`${songs} of ${total} songs shown: keep typing to narrow.`));
    listbox.replaceChildren(...items);
    openList(true);
    setActive(options.findIndex((_, i) => selectable(i)));
    seedLive.textContent = options.length
      ? `${plural(options.length, "suggestion")}. Use the up and down arrow keys to choose, Enter to add.`
      : `Nothing matches ${query}.`;
  }

  const lookup = (url, query, limit, signal) =>
    fetchJSON(`${url}?${new URLSearchParams({ q: query, limit: String(limit) })}`, { signal });

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
    const named = (url, kind, field) => (url
      ? lookup(url, query, NAMED, controller.signal)
        .then((b) => (b[`${kind}s`] || []).map((x) => ({ kind, name: x[field], songs: x.songs })))
        .catch((err) => { if (err.name === "AbortError") throw err; return []; })
      : Promise.resolve([]));
    try {
      const [songs, artists, tags] = await Promise.all([lookup(api.songs, query, SUGGESTIONS, controller.signal),
        named(api.artists, "artist", "name"), named(api.tags, "tag", "tag")]);
      if (controller.signal.aborted || input.value.trim() !== query) return;
      options = [...artists, ...tags, ...(songs.songs || []).map((s) => Object.assign({ kind: "song" }, s))];
      if (v2) { // a prompt is offered last, or first when the text looks like one
        const prompt = { kind: "prompt", text: query };
        if (/[:#]/.test(query)) options.unshift(prompt); else options.push(prompt);
      }
      renderOptions(songs.total || 0, query);
    } catch (err) {
      if (err.name === "AbortError") return;
      options = [];
      listbox.replaceChildren(info(err.message));
      openList(true);
    }
  }, 200);

  function add(p) {
    if (p.kind === "prompt") picks = picks.filter((q) => q.kind !== "prompt"); // one prompt at a time
    else if (picks.filter((q) => q.kind === p.kind).length >= maxSeeds) {
      seedLive.textContent = `At most ${maxSeeds} ${p.kind}s.`;
      return false;
    }
    picks.push(p);
    return true;
  }

  function pick(i) {
    const o = options[i];
    if (!o) return;
    const p = o.kind === "song" ? { kind: "song", key: o.key, title: o.title, artist: o.artist, ignored: false }
      : o.kind === "prompt" ? { kind: "prompt", text: o.text } : { kind: o.kind, name: o.name, songs: o.songs };
    if (!add(p)) return;
    input.value = "";
    options = [];
    openList(false);
    renderChips();
    seedLive.textContent = `Added ${label(p)}. ${plural(picks.length, "seed")}.`;
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
        if (!input.value && picks.length) removePick(picks.length - 1, false);
        break;
      default:
    }
  });
  input.addEventListener("blur", () => openList(false));
  input.addEventListener("focus", () => { if (options.length) openList(true); });

  // ---- chips: what the radio starts from, and what it leaves out ---------------------------------------------

  function chipText(p) {
    if (p.kind === "song") {
      return [p.title || p.key, p.artist ? el("span", { class: "chip-artist" }, ` · ${p.artist}`) : null];
    }
    if (p.kind === "prompt") return [el("span", { class: "chip-kind" }, "prompt "), el("code", {}, p.text)];
    return [el("span", { class: "chip-kind" }, `${p.kind} `), p.name];
  }

  function renderChips() {
    const focused = document.activeElement && document.activeElement.closest("#seed-chips li");
    const focusedId = focused ? focused.dataset.id : null;
    chips.replaceChildren(...picks.map((p, i) => el("li", {
      class: `chip kind-${p.kind}${p.ignored ? " ignored" : ""}`, "data-id": idOf(p), "data-key": p.key || null,
      title: p.ignored ? "Not in the catalogue or too rare for the song model: this seed is ignored" : null,
    }, [
      el("span", { class: "chip-text" }, chipText(p)),
      el("button", { type: "button", "aria-label": `Remove ${label(p)}`, onclick: () => removePick(i, true) }, "×"),
    ])));
    if (focusedId) { // re-rendering must not drop keyboard focus
      const again = Array.from(chips.children).find((li) => li.dataset.id === focusedId);
      if (again) again.querySelector("button").focus();
    }
  }

  function removePick(i, fromButton) {
    const [gone] = picks.splice(i, 1);
    renderChips();
    if (fromButton) {
      const buttons = chips.querySelectorAll("button");
      (buttons[Math.min(i, buttons.length - 1)] || input).focus();
    }
    seedLive.textContent = `Removed ${label(gone)}. ${plural(picks.length, "seed")} left.`;
    seedsChanged();
  }

  function renderExclude() {
    excludeBox.hidden = !exclude.length;
    excludeChips.replaceChildren(...exclude.map((e, i) => el("li", { class: "chip ignored", "data-value": e.value }, [
      el("span", { class: "chip-text" }, e.label),
      el("button", { type: "button", "aria-label": `Bring back ${e.label}`, onclick: () => unskip(i) }, "×"),
    ])));
  }

  /** What the server says an exclude entry named: "Title by Artist", "all by Artist", or the value, not found. */
  function excludedLabel(x) {
    if (x.kind === "song") return describe(x);
    if (x.kind === "artist") return `all by ${x.artist}`;
    return `${x.value} (not found)`;
  }

  /** Name the skips (a link holds only their keys) from the answer's `excluded`; the chips stay in place, focus too. */
  function relabelExclude(excluded) {
    const named = new Map((excluded || []).map((x) => [x.value, excludedLabel(x)]));
    exclude.forEach((e, i) => {
      const text = named.get(e.value);
      if (!text || text === e.label) return;
      e.label = text;
      const chip = excludeChips.children[i];
      if (!chip || chip.dataset.value !== e.value) return;
      chip.querySelector(".chip-text").textContent = text;
      chip.querySelector("button").setAttribute("aria-label", `Bring back ${text}`);
    });
  }

  function skip(value, text, position) {
    if (exclude.some((e) => e.value.toLowerCase() === value.toLowerCase())) return;
    if (exclude.length >= maxExclude) {
      showError(errorBox, `At most ${maxExclude} songs and artists can be left out: bring some back first.`);
      return;
    }
    exclude.push({ value, label: text });
    renderExclude();
    refocus = position;
    seedLive.textContent = `Skipped ${text}. Making the radio again without it.`;
    makeRadio();
  }

  function unskip(i) {
    const [back] = exclude.splice(i, 1);
    renderExclude();
    const buttons = excludeChips.querySelectorAll("button");
    (buttons[Math.min(i, buttons.length - 1)] || input).focus();
    seedLive.textContent = `Brought back ${back.label}.`;
    if (hasPlaylist) makeRadio();
  }

  // ---- the radio ---------------------------------------------------------------------------------------------

  const autoRefresh = debounce(() => makeRadio(), 250);

  function clearRadio(message) {
    hasPlaylist = false;
    showExport(null);
    playlist.replaceChildren();
    showError(notice, leftOut);
    statusLine.textContent = message;
  }

  function seedsChanged() {
    if (!picks.length) {
      autoRefresh.cancel();
      if (radioAbort) radioAbort.abort();
      clearRadio("Add at least one seed to start.");
      showError(errorBox, "");
      history.replaceState(null, "", location.pathname);
      return;
    }
    if (hasPlaylist) autoRefresh();
  }

  function readInt(field, name) {
    const raw = field.value.trim();
    if (raw === "") return null;
    const n = Number(raw);
    const max = Number(field.max);
    if (!Number.isInteger(n) || n < 1 || n > max) throw new Error(`${name} must be a whole number from 1 to ${max}.`);
    return n;
  }

  function request() {
    const size = readInt(sizeInput, "Songs");
    const req = {};
    const of = (kind, field) => picks.filter((p) => p.kind === kind).map((p) => p[field]);
    if (of("song", "key").length) req.seeds = of("song", "key");
    if (of("artist", "name").length) req.artists = of("artist", "name");
    if (of("tag", "name").length) req.tags = of("tag", "name");
    if (of("prompt", "text").length) req.prompt = of("prompt", "text")[0];
    if (modeSelect && modeSelect.value !== "medium") req.mode = modeSelect.value; // medium: the API's default
    req.size = size === null ? 25 : size;
    req.max_per_artist = readInt(capInput, "Max per artist");
    req.variety = Number(varietySelect.value) || 0;
    if (exclude.length) req.exclude = exclude.map((e) => e.value);
    return req;
  }

  /** The page's query string for a request: every part of the radio, so a shared link plays the same one. */
  function queryOf(req) {
    const params = new URLSearchParams();
    const lists = { seed: req.seeds, artist: req.artists, tag: req.tags, exclude: req.exclude };
    for (const [name, values] of Object.entries(lists)) {
      (values || []).forEach((v) => params.append(name, v));
    }
    if (req.prompt) params.set("prompt", req.prompt);
    if (req.mode) params.set("mode", req.mode);
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
    // Spotify's sign-in carries the whole radio (songs, artists, tags, prompt, mode, skips) and makes it again
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
      response = await fetch(`${api.radio}?format=${encodeURIComponent(format)}`, {
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
    if (!picks.length) {
      showError(errorBox, `Add at least one seed first: type in the ${$("seed-label").textContent} box.`);
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
      const body = await fetchJSON(api.radio, {
        method: "POST", body: JSON.stringify(req), signal: controller.signal,
        headers: { "Content-Type": "application/json", Accept: "application/json" },
      });
      render(body);
      remember(req);
    } catch (err) {
      if (err.name === "AbortError") return;
      refocus = null;
      clearRadio("");
      remember(req); // the link still says what was asked, so it can be fixed and shared
      showExport(null);
      problem(err);
    } finally {
      if (radioAbort === controller) {
        radioAbort = null;
        playlist.removeAttribute("aria-busy");
      }
    }
  }

  // ---- what went wrong, helpfully: unknown seeds, "did you mean", where a prompt stops parsing ----------------

  function problem(err) {
    const body = err.body || {};
    const unknown = body.unknown || [];
    if (body.code === "unknown_seeds" && unknown.length) {
      picks.forEach((p) => { if (p.kind === "song" && unknown.includes(p.key)) p.ignored = true; });
      renderChips();
    }
    const parts = [el("p", {}, err.message)];
    if ((body.code === "unknown_artist" || body.code === "unknown_tag") && (body.closest || []).length) {
      const kind = body.code.slice("unknown_".length);
      parts.push(el("p", {}, ["Did you mean ", ...body.closest.flatMap((name, i) => [i ? " " : null,
        el("button", { type: "button", class: "button small suggestion", onclick: () => replaceUnknown(kind, err, name) },
          name)]), "?"]));
    }
    if (body.code === "bad_prompt" && Number.isInteger(body.position)) {
      const text = (picks.find((p) => p.kind === "prompt") || {}).text || "";
      const at = Math.min(body.position, text.length);
      parts.push(el("p", { class: "prompt-at" }, [el("code", {}, [text.slice(0, at),
        el("mark", { title: `character ${body.position}` }, text.slice(at, at + 1) || " "), text.slice(at + 1)])]));
    }
    errorBox.replaceChildren(...parts);
    errorBox.hidden = false;
  }

  /** Replace the artist or tag the server did not know with one of its closest names, and play again. */
  function replaceUnknown(kind, err, name) {
    const quoted = /(['"])(.+?)\1/.exec(err.message); // "no artist called 'Madona'; closest: ..."
    const asked = quoted ? quoted[2] : "";
    const named = picks.filter((p) => p.kind === kind);
    const wrong = named.find((p) => p.name.toLowerCase() === asked.toLowerCase());
    const prompt = picks.find((p) => p.kind === "prompt");
    if (wrong) wrong.name = name;
    else if (prompt && asked && prompt.text.includes(asked)) prompt.text = prompt.text.replace(asked, name);
    else if (named.length) named[named.length - 1].name = name;
    else add({ kind, name, songs: 0 });
    renderChips();
    seedLive.textContent = `Using ${kind} ${name}.`;
    makeRadio();
  }

  // ---- the playlist --------------------------------------------------------------------------------------------

  function render(body) {
    const known = new Map(body.seeds.map((s) => [s.key, s]));
    const ignored = new Set(body.ignored_seeds || []);
    const byName = (list, field) => new Map((list || []).map((x) => [x[field].toLowerCase(), x]));
    const artists = byName(body.artists, "name");
    const tags = byName(body.tags, "tag");
    picks = picks.map((p) => {
      if (p.kind === "song") return Object.assign({}, p, known.get(p.key) || {}, { ignored: ignored.has(p.key) });
      const found = (p.kind === "artist" ? artists : p.kind === "tag" ? tags : new Map()).get((p.name || "").toLowerCase());
      return found ? Object.assign({}, p, { name: found.name || found.tag, songs: found.songs }) : p;
    });
    renderChips();
    relabelExclude(body.excluded);
    playlist.replaceChildren(...body.playlist.map(song));
    hasPlaylist = true;
    const from = [...body.seeds.map(describe), ...(body.artists || []).map((a) => `artist ${a.name}`),
      ...(body.tags || []).map((t) => `tag ${t.tag}`)];
    const prompt = picks.find((p) => p.kind === "prompt");
    if (!from.length && prompt) from.push(`the prompt “${prompt.text}”`);
    let text = `${plural(body.size, "song")} from ${from.join("; ")}`;
    if (body.mode) text += ` (${body.mode} mode)`;
    const excluded = body.excluded || [];
    const notFound = excluded.filter((x) => x.kind === "unknown").length;
    if (excluded.length > notFound) text += `, ${plural(excluded.length - notFound, "skip")} left out`;
    if (notFound) text += `, ${plural(notFound, "skip")} not found`;
    statusLine.textContent = `${text}.`;
    if (ignored.size) {
      const names = picks.filter((p) => p.ignored).map((p) => (p.title && p.title !== p.key ? describe(p) : p.key));
      notice.replaceChildren(el("p", {}, `Ignored ${plural(ignored.size, "seed")} this catalogue does not know `
        + `(or too rare for the song model): ${names.join("; ")}. The radio plays from the rest.`),
      el("button", { type: "button", class: "button small", onclick: dropIgnored }, "Remove from the link"));
      notice.hidden = false;
    } else {
      showError(notice, leftOut);
    }
    if (refocus !== null) { // after a skip, focus stays where it was in the list
      const items = playlist.querySelectorAll("li.song .skip");
      (items[Math.min(refocus, items.length - 1)] || heading).focus();
      refocus = null;
    }
  }

  function dropIgnored() {
    picks = picks.filter((p) => !p.ignored);
    renderChips();
    showError(notice, "");
    heading.focus();
    seedsChanged();
  }

  function song(s, i) {
    const name = describe(s);
    return el("li", { class: "song", "data-key": s.key, "data-score": s.score }, [
      el("div", { class: "song-main" }, [
        el("div", { class: "song-title" }, s.title || s.key),
        el("div", { class: "song-artist" }, s.artist || "unknown artist"),
        s.reason ? el("div", { class: "song-reason" }, s.reason) : null,
      ]),
      el("div", { class: "song-actions" }, [
        s.spotify_url ? el("a", { class: "spotify", href: s.spotify_url, target: "_blank", rel: "noopener noreferrer",
          "aria-label": `Open ${name} in Spotify (new tab)` }, "Spotify ↗") : null,
        el("button", { type: "button", class: "button small skip", "aria-label": `Skip ${name}`,
          onclick: () => skip(s.key, name, i) }, "Skip"),
        s.artist ? el("button", { type: "button", class: "button small skip-artist",
          "aria-label": `Skip artist: no more from ${s.artist}`,
          onclick: () => skip(s.artist, `all by ${s.artist}`, i) }, "Skip artist") : null,
        el("button", { type: "button", class: "button small", "aria-label": `Radio from this: ${name}`,
          onclick: () => regenerateFrom(s) }, "Radio from this"),
      ]),
    ]);
  }

  function regenerateFrom(s) {
    picks = [{ kind: "song", key: s.key, title: s.title, artist: s.artist, ignored: false }];
    renderChips();
    seedLive.textContent = `New radio from ${describe(s)}.`;
    heading.focus();
    makeRadio();
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    makeRadio();
  });
  for (const field of [sizeInput, capInput, varietySelect, modeSelect]) {
    if (field) field.addEventListener("change", () => { if (hasPlaylist) autoRefresh(); });
  }

  // ---- restore a radio from the URL (?seed=…&artist=…&tag=…&prompt=…&mode=…&exclude=…&size=…) ------------------
  const params = new URLSearchParams(location.search);
  const list = (name) => params.getAll(name).map((v) => v.trim()).filter(Boolean);
  list("seed").slice(0, maxSeeds).forEach((key) => add({ kind: "song", key, title: key, artist: "", ignored: false }));
  const named = [...list("artist").map((name) => ({ kind: "artist", name, songs: 0 })),
    ...list("tag").map((name) => ({ kind: "tag", name, songs: 0 }))];
  const prompt = (params.get("prompt") || "").trim();
  if (v2) {
    named.forEach(add);
    if (prompt) add({ kind: "prompt", text: prompt });
    if (MODES.includes(params.get("mode"))) modeSelect.value = params.get("mode");
  }
  exclude = list("exclude").slice(0, maxExclude).map((value) => ({ value, label: value }));
  renderExclude();
  if (params.get("size")) sizeInput.value = params.get("size");
  if (params.get("max_per_artist")) capInput.value = params.get("max_per_artist");
  if ([...varietySelect.options].some((o) => o.value === params.get("variety"))) {
    varietySelect.value = params.get("variety");
  }
  renderChips();
  if (!v2 && (named.length || prompt)) {
    leftOut = "This server makes radios from songs only (no artist, tag or prompt radio yet): "
      + `left out ${[...named.map(label), prompt ? `prompt “${prompt}”` : null].filter(Boolean).join("; ")}.`;
    showError(notice, leftOut);
  }
  if (picks.length) makeRadio();
  heading.setAttribute("tabindex", "-1");
})();
