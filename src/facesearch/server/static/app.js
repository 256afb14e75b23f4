// facesearch web UI: a small single-page app over the /v1 HTTP API. No frameworks, no build step.
// Data from the API is always written with textContent, never innerHTML.
"use strict";

const KEY_STORAGE = "facesearch.apiKey";
const RESULTS_STORAGE = "facesearch.results";
const AUDIT_LIMIT = 50;
const AUDIT_ACTIONS = [
  "ingest", "search", "verify", "export", "purge", "erasure", "access-request", "objection",
  "objection-skip", "configuration", "people", "subject", "refusal", "view",
];
const LAWFUL_BASES = [
  "consent", "contract", "legal-obligation", "vital-interests", "public-task", "legitimate-interests",
];
const BIOMETRIC_CONDITIONS = [
  "explicit-consent", "employment", "vital-interests", "not-for-profit-body", "made-public", "legal-claims",
  "substantial-public-interest", "health-care", "public-health", "archiving-research",
];
const UPLOAD_BATCH = 4;
const JOB_POLL_MS = 400;
const NAV = [
  { route: "search", label: "Search", roles: ["search"] },
  { route: "upload", label: "Upload", roles: ["ingest"] },
  { route: "people", label: "People", roles: ["search", "ingest"] },
  { route: "rights", label: "Rights requests", roles: ["rights"] },
  { route: "audit", label: "Audit log", roles: ["auditor"] },
  { route: "collections", label: "Collections", roles: ["admin", "ingest", "search", "auditor", "rights", "recognition"] },
];
const HOME = { search: "search", ingest: "upload", rights: "rights", auditor: "audit" };

const state = {
  me: null, objectUrls: [], auditOffset: 0, pendingError: "",
  peopleCollection: "", peopleSelected: [], peopleLoad: 0, peopleNotice: "",
};

// ---------- small helpers ----------

function $(selector, root = document) {
  return root.querySelector(selector);
}

function el(tag, text, attrs = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  return node;
}

function getKey() {
  return sessionStorage.getItem(KEY_STORAGE);
}

function formatDate(value) {
  if (!value) return "";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

function formatDay(value) {
  if (!value) return "";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleDateString();
}

function fileName(path) {
  return String(path || "").split(/[\\/]/).pop();
}

function showError(message) {
  const box = $("#alert");
  box.textContent = message;
  box.hidden = false;
}

function clearError() {
  const box = $("#alert");
  box.textContent = "";
  box.hidden = true;
}

function forgetObjectUrls() {
  for (const url of state.objectUrls) URL.revokeObjectURL(url);
  state.objectUrls = [];
}

// ---------- the API ----------

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function request(path, options = {}) {
  const headers = new Headers(options.headers || {});
  const key = options.key || getKey();
  if (key) headers.set("X-API-Key", key);
  let response;
  try {
    response = await fetch(path, { ...options, headers });
  } catch (error) {
    throw new ApiError(0, "network", `The server could not be reached: ${error.message}`);
  }
  if (!response.ok) {
    let body = {};
    try {
      body = await response.json();
    } catch (error) {
      body = {};
    }
    throw new ApiError(response.status, body.code || "http_error", body.message || `HTTP ${response.status}`);
  }
  return response;
}

async function api(path, options = {}) {
  const response = await request(path, options);
  return response.json();
}

async function imageUrl(path) {
  const response = await request(path);
  const url = URL.createObjectURL(await response.blob());
  state.objectUrls.push(url);
  return url;
}

function handleError(error) {
  const message = error.message || String(error);
  if (error instanceof ApiError && error.status === 401 && state.me) {
    state.pendingError = `Signed out: ${message}`;
    signOut();
    return;
  }
  showError(message);
}

// ---------- sign in and out ----------

async function signIn(key) {
  const me = await api("/v1/me", { key });
  if (key !== getKey()) forgetResults();
  sessionStorage.setItem(KEY_STORAGE, key);
  state.me = me;
  renderHeader();
  return me;
}

function signOut() {
  sessionStorage.removeItem(KEY_STORAGE);
  forgetResults();
  state.me = null;
  renderHeader();
  location.hash = "#/signin";
}

function renderHeader() {
  const nav = $("#nav");
  nav.replaceChildren();
  const who = $("#who");
  if (!state.me) {
    who.hidden = true;
    return;
  }
  const list = el("ul");
  for (const item of NAV) {
    if (!item.roles.includes(state.me.role)) continue;
    const li = el("li");
    li.append(el("a", item.label, { href: `#/${item.route}`, "data-route": item.route }));
    list.append(li);
  }
  nav.append(list);
  $("#who-text").textContent = `${state.me.owner} (${state.me.role})`;
  who.hidden = false;
}

function markCurrentNav(route) {
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.route === route) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

// ---------- routing ----------

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query] = raw.split("?");
  const parts = path.split("/").filter(Boolean);
  return { route: parts[0] || "", args: parts.slice(1), params: new URLSearchParams(query || "") };
}

function mount(templateId) {
  forgetObjectUrls();
  const main = $("#main");
  main.replaceChildren($(templateId).content.cloneNode(true));
  return main;
}

const PAGES = {
  signin: { render: renderSignIn, roles: null },
  search: { render: renderSearch, roles: ["search"] },
  image: { render: renderImage, roles: ["search", "rights"] },
  collections: {
    render: renderCollections, roles: ["admin", "ingest", "search", "auditor", "rights", "recognition"],
  },
  audit: { render: renderAudit, roles: ["auditor"] },
  rights: { render: renderRights, roles: ["rights"] },
  upload: { render: renderUpload, roles: ["ingest"] },
  people: { render: (args, params) => (state.me.role === "ingest" ? renderGrouping() : renderPeople(args, params)),
    roles: ["search", "ingest"] },
  person: { render: renderPerson, roles: ["search"] },
};
const NAV_OF = { person: "people", image: "search" };

async function route() {
  clearError();
  if (state.pendingError) {
    showError(state.pendingError);
    state.pendingError = "";
  }
  const { route: name, args, params } = parseHash();
  if (!state.me && getKey()) {
    try {
      await signIn(getKey());
    } catch (error) {
      sessionStorage.removeItem(KEY_STORAGE);
      forgetResults();
    }
  }
  if (!state.me) {
    if (name !== "signin") {
      location.hash = "#/signin";
      return;
    }
  } else if (!PAGES[name] || name === "signin" || !PAGES[name].roles.includes(state.me.role)) {
    location.hash = `#/${HOME[state.me.role] || "collections"}`;
    return;
  }
  markCurrentNav(NAV_OF[name] || name);
  try {
    await PAGES[name].render(args, params);
  } catch (error) {
    handleError(error);
  }
}

// ---------- sign-in page ----------

function renderSignIn() {
  const main = mount("#tpl-signin");
  const input = $("#api-key", main);
  $("#signin-form", main).addEventListener("submit", async (event) => {
    event.preventDefault();
    clearError();
    try {
      await signIn(input.value.trim());
      input.value = "";
      location.hash = `#/${HOME[state.me.role] || "collections"}`;
    } catch (error) {
      showError(error.status === 401 ? `Sign-in failed: ${error.message}` : error.message);
    }
  });
  input.focus();
}

// ---------- search page ----------
// A search's answer is kept in this tab (session storage) so that Back and reload show it again without a new,
// audited and rate-limited search. It holds only what this key was shown, and sign-out forgets it.

function savedResults() {
  let saved = null;
  try {
    saved = JSON.parse(sessionStorage.getItem(RESULTS_STORAGE) || "null");
  } catch (error) {
    saved = null;
  }
  if (!saved || !state.me || saved.keyId !== state.me.id || !saved.answer) return null;
  return saved;
}

function keepResults(saved) {
  try {
    sessionStorage.setItem(RESULTS_STORAGE, JSON.stringify(saved));
    return true;
  } catch (error) {
    return false; // over the tab's storage quota: the results are shown but not kept
  }
}

function forgetResults() {
  sessionStorage.removeItem(RESULTS_STORAGE);
}

function findMatch(faceId) {
  const saved = savedResults();
  if (!saved) return null;
  for (const face of saved.answer.results) {
    const match = face.matches.find((m) => String(m.face_id) === String(faceId));
    if (match) return { match, threshold: saved.answer.threshold, caseRef: saved.caseRef };
  }
  return null;
}

function dropImageFromResults(imageId) {
  const saved = savedResults();
  if (!saved) return;
  for (const face of saved.answer.results) {
    face.matches = face.matches.filter((m) => String(m.image_id) !== String(imageId));
  }
  keepResults(saved);
}

function renderSearch() {
  const main = mount("#tpl-search");
  $("#purpose", main).textContent = state.me.purpose || "(none declared)";
  const input = $("#probe", main);
  input.addEventListener("change", () => showPreview(input.files[0]));
  setUpDropZone($("#drop", main), input, (files) => showPreview(files[0]));
  $("#search-form", main).addEventListener("submit", (event) => {
    event.preventDefault();
    runSearch(input.files[0], $("#case", main).value.trim());
  });
  $("#clear-results", main).addEventListener("click", () => {
    forgetResults();
    forgetObjectUrls();
    $("#results").replaceChildren();
    $("#search-status").textContent = "";
    showKept(null);
  });
  const saved = savedResults();
  if (!saved) return;
  renderResults(saved.answer, $("#search-status", main), $("#results", main));
  showKept(saved);
  const opened = saved.opened && $(`#results a.match[data-face-id="${saved.opened}"]`, main);
  if (opened) {
    opened.scrollIntoView({ block: "center" });
    opened.focus({ preventScroll: true });
  }
}

function showKept(saved) {
  const kept = $("#results-kept");
  if (!kept) return;
  kept.hidden = !saved;
  if (!saved) return;
  const when = formatDate(saved.at);
  const what = saved.caseRef ? `your search for \u201c${saved.caseRef}\u201d at ${when}` : `your search at ${when}`;
  $("#results-note").textContent = `These are the results of ${what}, kept in this tab until you sign out; `
    + "opening them again runs no new search.";
}

function setUpDropZone(zone, input, onFiles) {
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    if (!event.dataTransfer || event.dataTransfer.files.length === 0) return;
    input.files = event.dataTransfer.files;
    onFiles(input.files);
  });
}

function showPreview(file) {
  const preview = $("#probe-preview");
  if (!preview) return;
  if (preview.src) URL.revokeObjectURL(preview.src);
  if (!file) {
    preview.hidden = true;
    return;
  }
  preview.src = URL.createObjectURL(file);
  preview.hidden = false;
}

async function runSearch(file, caseRef) {
  clearError();
  const status = $("#search-status");
  const results = $("#results");
  if (!file) {
    showError("Choose a probe photo first.");
    return;
  }
  forgetObjectUrls();
  forgetResults();
  showKept(null);
  results.replaceChildren();
  status.textContent = "Searching…";
  const form = new FormData();
  form.append("file", file);
  if (caseRef) form.append("case", caseRef);
  const button = $("#search-button");
  button.disabled = true;
  try {
    const answer = await api("/v1/search", { method: "POST", body: form });
    const saved = { keyId: state.me.id, at: new Date().toISOString(), caseRef, answer, opened: null, thumbs: {} };
    const kept = keepResults(saved); // before the cards, so that their thumbnails are kept as they arrive
    renderResults(answer, status, results);
    if (kept) showKept(saved);
  } catch (error) {
    status.textContent = error.code === "no_face" ? "No face was found in the probe photo." : "Search failed.";
    handleError(error);
  } finally {
    button.disabled = false;
  }
}

function renderResults(answer, status, results) {
  const total = answer.results.reduce((sum, face) => sum + face.matches.length, 0);
  status.textContent = total === 0
    ? `No matches for the ${answer.faces_in_probe} face(s) in the probe (threshold ${answer.threshold}).`
    : `${total} match(es) for ${answer.faces_in_probe} face(s) in the probe (threshold ${answer.threshold}; smaller distance = more similar).`;
  const point = answer.operating_point;
  if (point) {
    const note = el("p", operatingPointText(point), { class: "hint operating-point" });
    results.append(note);
  }
  for (const face of answer.results) {
    if (face.matches.length === 0) continue;
    const section = el("section", null, { class: "probe-face" });
    section.append(el("h2", `Probe face ${face.probe_face + 1}: ${face.matches.length} match(es)`));
    const grid = el("ul", null, { class: "grid" });
    for (const match of face.matches) grid.append(matchCard(match));
    section.append(grid);
    results.append(section);
  }
}

function operatingPointText(point) {
  const faces = `${Number(point.gallery_size).toLocaleString("en")} face(s) searched`;
  if (point.expected_false_matches === null) return `Threshold ${point.threshold} over ${faces} (not calibrated).`;
  const why = point.chosen_by === "threshold" ? "given" : `chosen for ${point.wanted_false_matches} wrong people per probe face`;
  const extrapolated = point.extrapolated ? ", extrapolated below the measured curve" : "";
  return `Threshold ${point.threshold} (${why}) over ${faces}: about ${point.expected_false_matches} wrong people ` +
    `per probe face${extrapolated}. "Same person" is the estimated chance that a match is the person, at even prior odds.`;
}

function likelihood(value) {
  if (value === null || value === undefined) return "–";
  if (value > 0.99) return ">99%";
  if (value < 0.01) return "<1%";
  return `${Math.round(value * 100)}%`;
}

function matchCard(match) {
  const li = el("li");
  const link = el("a", null, {
    class: "match", href: `#/image/${match.image_id}?face=${match.face_id}`, "data-face-id": match.face_id,
  });
  link.addEventListener("click", () => {
    const saved = savedResults();
    if (!saved) return;
    saved.opened = match.face_id;
    keepResults(saved);
  });
  const img = el("img", null, { alt: `Face ${match.face_id}`, width: "150", height: "150" });
  link.append(img);
  const facts = el("dl");
  addFact(facts, "Distance", Number(match.distance).toFixed(2));
  addFact(facts, "Same person", likelihood(match.same_person));
  addFact(facts, "Collection", match.collection);
  const source = addFact(facts, "Source", fileName(match.image_path));
  source.title = match.image_path;
  source.classList.add("source");
  addFact(facts, "Ingested", formatDay(match.ingested_at));
  link.append(facts);
  li.append(link);
  showMatchThumbnail(img, match.face_id);
  return li;
}

async function showMatchThumbnail(img, faceId) {
  // A kept thumbnail is shown from the tab's storage (no request, nothing audited again); a new one is fetched
  // and kept beside the results it belongs to.
  const kept = savedResults();
  const stored = kept && kept.thumbs && kept.thumbs[faceId];
  if (stored) {
    img.src = base64Url(stored);
    return;
  }
  try {
    const response = await request(`/v1/faces/${faceId}/thumbnail`);
    const blob = await response.blob();
    const url = URL.createObjectURL(blob);
    state.objectUrls.push(url);
    img.src = url;
    const encoded = await blobBase64(blob);
    const saved = savedResults();
    if (saved && kept && saved.at === kept.at) {
      saved.thumbs = { ...(saved.thumbs || {}), [faceId]: encoded };
      keepResults(saved);
    }
  } catch (error) {
    img.alt = `Face ${faceId} (thumbnail unavailable)`;
  }
}

function blobBase64(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1] || "");
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

function base64Url(encoded, type = "image/jpeg") {
  // An object URL, not a data: URL, which the page's Content-Security-Policy does not allow for images.
  const bytes = Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0));
  const url = URL.createObjectURL(new Blob([bytes], { type }));
  state.objectUrls.push(url);
  return url;
}

function addFact(list, term, value) {
  list.append(el("dt", term));
  const dd = el("dd", value);
  list.append(dd);
  return dd;
}

// ---------- image page ----------

async function renderImage(args, params) {
  const imageId = args[0];
  const faceId = params.get("face");
  const main = mount("#tpl-image");
  const found = faceId ? findMatch(faceId) : null;
  const back = $("#back-to-results", main);
  if (found) {
    back.hidden = false;
  } else if (history.length > 1) {
    back.textContent = "← Back";
    back.hidden = false;
    back.addEventListener("click", (event) => {
      event.preventDefault();
      history.back();
    });
  }
  let image;
  try {
    image = await api(`/v1/images/${encodeURIComponent(imageId)}`);
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 404) throw error;
    showImageGone(main, imageId, Boolean(found));
    return;
  }
  $("#image-title", main).textContent = `#${image.id}`;
  if (found) showMatchFacts(main, found);
  const facts = $("#image-facts tbody", main);
  addRow(facts, "Collection", image.collection);
  addRow(facts, "Source", image.source).classList.add("source");
  addRow(facts, "Size", `${image.width} × ${image.height} px (${image.format})`);
  addRow(facts, "Ingested at", formatDate(image.ingested_at));
  addRow(facts, "Faces", image.face_count);
  const faces = $("#image-faces tbody", main);
  for (const face of image.faces) {
    const row = el("tr");
    if (String(face.id) === String(faceId)) row.classList.add("chosen");
    for (const value of [face.id, face.box.join(", "), Number(face.score).toFixed(2), face.rotation, face.subject || ""]) {
      row.append(el("td", value));
    }
    faces.append(row);
  }
  const query = faceId ? `?face=${encodeURIComponent(faceId)}` : "";
  $("#picture", main).src = await imageUrl(`/v1/images/${encodeURIComponent(imageId)}/picture${query}`);
}

function showMatchFacts(main, found) {
  const { match, threshold, caseRef } = found;
  const table = $("#match-facts", main);
  const body = $("tbody", table);
  addRow(body, "Distance", `${Number(match.distance).toFixed(2)} (match threshold ${threshold}; smaller is more similar)`);
  if (typeof match.same_person === "number") addRow(body, "Same person", likelihood(match.same_person));
  addRow(body, "Probe face", match.probe_face + 1);
  addRow(body, "Face", match.face_id);
  if (caseRef) addRow(body, "Case", caseRef);
  table.hidden = false;
}

function showImageGone(main, imageId, fromResults) {
  $("#image-card", main).hidden = true;
  const gone = $("#image-gone", main);
  gone.hidden = false;
  const text = `Image #${imageId} is no longer held: it was erased (an erasure request, or a deletion) or its `
    + "retention period ran out, so nothing of it can be shown.";
  $("#image-gone-text", main).textContent = fromResults
    ? `${text} It is taken out of your kept results; search again to see what is held now.`
    : text;
  if (fromResults) dropImageFromResults(imageId);
}

function addRow(tbody, label, value) {
  const row = el("tr");
  row.append(el("th", label, { scope: "row" }));
  const cell = el("td", value);
  row.append(cell);
  tbody.append(row);
  return cell;
}

// ---------- collections page (admin: create one) ----------

async function renderCollections() {
  const main = mount("#tpl-collections");
  if (state.me.role === "admin") setUpNewCollection(main);
  $("#recognition-note", main).hidden = state.me.role !== "recognition";
  return loadCollections();
}

async function loadCollections() {
  const answer = await api("/v1/collections");
  const tbody = $("#collections tbody");
  if (!tbody) return;
  tbody.replaceChildren();
  for (const c of answer.items) {
    const row = el("tr");
    for (const value of [c.name, c.purpose, c.lawful_basis, c.biometric_condition, c.retention_days,
      c.image_count, c.face_count]) {
      row.append(el("td", value));
    }
    tbody.append(row);
  }
  if (answer.items.length === 0) {
    const row = el("tr");
    row.append(el("td", "No collections yet.", { colspan: "7" }));
    tbody.append(row);
  }
}

function setUpNewCollection(main) {
  $("#new-collection", main).hidden = false;
  const basis = $("#c-basis", main);
  const condition = $("#c-condition", main);
  basis.append(el("option", "(choose)", { value: "" }));
  condition.append(el("option", "(choose)", { value: "" }));
  for (const value of LAWFUL_BASES) basis.append(el("option", value, { value }));
  for (const value of BIOMETRIC_CONDITIONS) condition.append(el("option", value, { value }));
  const form = $("#collection-form", main);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearError();
    const status = $("#collection-status");
    const body = {
      name: $("#c-name").value.trim(),
      purpose: $("#c-purpose").value.trim(),
      lawful_basis: basis.value,
      biometric_condition: condition.value,
      retention: $("#c-retention").value.trim(),
      people_allowed: $("#c-people").checked,
    };
    const button = $("#create-collection");
    button.disabled = true;
    status.textContent = "Creating…";
    status.className = "status";
    try {
      const made = await api("/v1/collections", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      });
      status.textContent = `Created collection ${made.name}: ${made.lawful_basis}, ${made.biometric_condition}, `
        + `held ${made.retention_days} days${made.people_allowed ? ", grouping into people allowed" : ""}.`;
      status.classList.add("ok");
      form.reset();
      await loadCollections();
    } catch (error) {
      status.textContent = "";
      handleError(error);
    } finally {
      button.disabled = false;
    }
  });
}

// ---------- upload page (ingest) ----------

async function usableCollections(filter = () => true) {
  const answer = await api("/v1/collections");
  const mine = state.me.collections || [];
  return answer.items.filter((c) => mine.includes(c.name) && filter(c));
}

async function renderUpload() {
  const main = mount("#tpl-upload");
  const select = $("#upload-collection", main);
  const collections = await usableCollections();
  for (const c of collections) select.append(el("option", c.name, { value: c.name }));
  const purpose = $("#upload-purpose", main);
  const showPurpose = () => {
    const chosen = collections.find((c) => c.name === select.value);
    purpose.textContent = chosen ? `Purpose: ${chosen.purpose} (${chosen.lawful_basis}; held ${chosen.retention_days} days)` : "";
  };
  select.addEventListener("change", showPurpose);
  showPurpose();
  const input = $("#upload-files", main);
  const status = $("#upload-status", main);
  const describe = (files) => {
    status.className = "status";
    status.textContent = files.length ? `${files.length} photo(s) chosen.` : "";
  };
  input.addEventListener("change", () => describe(input.files));
  setUpDropZone($("#upload-drop", main), input, describe);
  if (collections.length === 0) {
    $("#upload-button", main).disabled = true;
    status.textContent = "This key may upload to no collection: ask an administrator for a key with a collection.";
    return;
  }
  $("#upload-form", main).addEventListener("submit", (event) => {
    event.preventDefault();
    if (input.files.length === 0) {
      showError("Choose one or more photos first.");
      return;
    }
    uploadFiles(select.value, [...input.files]);
  });
}

function newUploadTally() {
  return { sent: 0, images: 0, faces: 0, already: 0, noFaces: 0, failed: [] };
}

function addReport(tally, report) {
  tally.images += report.images_added;
  tally.faces += report.faces_added;
  tally.already += report.skipped_already_indexed;
  tally.noFaces += report.images_without_faces;
  for (const f of report.failed) tally.failed.push({ name: f.path, reason: f.reason });
  for (const f of report.unsupported) tally.failed.push({ name: f.path, reason: `${f.format}: ${f.advice}` });
}

async function sendUploads(collection, files, tally) {
  const form = new FormData();
  for (const file of files) form.append("files", file, file.name);
  try {
    const answer = await api(`/v1/collections/${encodeURIComponent(collection)}/images`, { method: "POST", body: form });
    addReport(tally, answer.report);
  } catch (error) {
    // A batch refused as a whole (too large, unreadable): send its files one by one to find the one at fault.
    if (!(error instanceof ApiError) || ![400, 413, 422].includes(error.status)) throw error;
    if (files.length === 1) tally.failed.push({ name: files[0].name, reason: error.message });
    else for (const file of files) await sendUploads(collection, [file], tally);
  }
}

function uploadSummary(tally, total) {
  const parts = [`${tally.images} image(s) added with ${tally.faces} face(s)`];
  if (tally.already) parts.push(`${tally.already} already held`);
  if (tally.noFaces) parts.push(`${tally.noFaces} without a face`);
  if (tally.failed.length) parts.push(`${tally.failed.length} not added (listed below)`);
  return `${tally.sent} of ${total} photo(s) sent: ${parts.join(", ")}.`;
}

async function uploadFiles(collection, files) {
  clearError();
  const button = $("#upload-button");
  const progress = $("#upload-progress");
  const status = $("#upload-status");
  const failures = $("#upload-failures");
  const tally = newUploadTally();
  failures.replaceChildren();
  progress.max = files.length;
  progress.value = 0;
  $("#upload-progress-wrap").hidden = false;
  button.disabled = true;
  status.className = "status";
  const leaving = (event) => event.preventDefault(); // the browser asks before leaving mid-upload
  window.addEventListener("beforeunload", leaving);
  try {
    for (let start = 0; start < files.length; start += UPLOAD_BATCH) {
      const batch = files.slice(start, start + UPLOAD_BATCH);
      status.textContent = `Uploading ${start + 1}–${start + batch.length} of ${files.length} to ${collection}…`;
      await sendUploads(collection, batch, tally);
      tally.sent += batch.length;
      progress.value = tally.sent;
    }
    status.textContent = `Done. ${uploadSummary(tally, files.length)}`;
    status.classList.add(tally.failed.length ? "bad" : "ok");
  } catch (error) {
    status.textContent = `Stopped. ${uploadSummary(tally, files.length)} The rest was not sent.`;
    status.classList.add("bad");
    handleError(error);
  } finally {
    window.removeEventListener("beforeunload", leaving);
    button.disabled = false;
    for (const f of tally.failed) failures.append(el("li", f.reason.startsWith(f.name) ? f.reason : `${f.name}: ${f.reason}`));
  }
}

// ---------- grouping page (ingest: the people page of an ingest key) ----------

async function renderGrouping() {
  const main = mount("#tpl-grouping");
  const select = $("#grouping-collection", main);
  const collections = await usableCollections((c) => c.people_allowed);
  for (const c of collections) select.append(el("option", c.name, { value: c.name }));
  if (collections.length === 0) {
    select.disabled = true;
    $("#grouping-button", main).disabled = true;
    $("#grouping-status", main).textContent = "None of this key's collections was declared for grouping faces into "
      + "people; an administrator can allow it for a collection whose purpose needs it.";
    return;
  }
  $("#grouping-form", main).addEventListener("submit", (event) => {
    event.preventDefault();
    runGrouping(select.value, $("#grouping-full").checked);
  });
}

async function runGrouping(collection, full) {
  // The grouping runs as a job on the server; its step and stage are polled until it is done.
  clearError();
  const button = $("#grouping-button");
  const status = $("#grouping-status");
  const progress = $("#grouping-progress");
  const base = `/v1/collections/${encodeURIComponent(collection)}/people/cluster/jobs`;
  const started = Date.now();
  button.disabled = true;
  status.className = "status";
  status.textContent = `Starting to group the faces of ${collection}…`;
  $("#grouping-progress-wrap").hidden = false;
  try {
    let job = await api(base, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ full }),
    });
    while (job.state === "running") {
      progress.max = job.steps;
      progress.value = Math.max(0, job.step - 0.5);
      const seconds = Math.round((Date.now() - started) / 1000);
      status.textContent = `Grouping the faces of ${collection}: step ${Math.max(job.step, 1)} of ${job.steps}, `
        + `${job.stage} (${seconds} s)…`;
      await new Promise((resolve) => { setTimeout(resolve, JOB_POLL_MS); });
      job = await api(`${base}/${job.id}`);
    }
    if (job.state === "failed") throw new ApiError(job.error.status, job.error.code, job.error.message);
    progress.value = progress.max;
    const r = job.result;
    status.textContent = `Grouped ${faceCount(r.faces)} of ${collection} in ${Number(r.seconds).toFixed(1)} s: `
      + `${r.people} people (${r.new_people} new, ${faceCount(r.assigned_to_existing)} joined people already there); `
      + `${faceCount(r.low_quality)} too small, blurred or unsure to group.`;
    status.classList.add("ok");
  } catch (error) {
    status.textContent = "";
    $("#grouping-progress-wrap").hidden = true;
    handleError(error);
  } finally {
    button.disabled = false;
  }
}

// ---------- audit page ----------

function renderAudit() {
  const main = mount("#tpl-audit");
  const select = $("#f-action", main);
  for (const action of AUDIT_ACTIONS) select.append(el("option", action, { value: action }));
  state.auditOffset = 0;
  $("#audit-form", main).addEventListener("submit", (event) => {
    event.preventDefault();
    state.auditOffset = 0;
    loadAudit();
  });
  $("#prev-page", main).addEventListener("click", () => {
    state.auditOffset = Math.max(0, state.auditOffset - AUDIT_LIMIT);
    loadAudit();
  });
  $("#next-page", main).addEventListener("click", () => {
    state.auditOffset += AUDIT_LIMIT;
    loadAudit();
  });
  $("#verify-chain", main).addEventListener("click", verifyChain);
  return loadAudit();
}

async function loadAudit() {
  clearError();
  const params = new URLSearchParams({ offset: state.auditOffset, limit: AUDIT_LIMIT });
  for (const name of ["actor", "action", "purpose"]) {
    const value = $(`#audit-form [name=${name}]`).value.trim();
    if (value) params.set(name, value);
  }
  try {
    const answer = await api(`/v1/audit?${params}`);
    renderAuditRows(answer.items);
    $("#prev-page").disabled = state.auditOffset === 0;
    $("#next-page").disabled = answer.items.length < AUDIT_LIMIT;
    const first = answer.items.length ? state.auditOffset + 1 : state.auditOffset;
    $("#page-info").textContent = `Entries ${first}–${state.auditOffset + answer.items.length}`;
  } catch (error) {
    handleError(error);
  }
}

function renderAuditRows(items) {
  const tbody = $("#audit tbody");
  tbody.replaceChildren();
  for (const entry of items) {
    const row = el("tr");
    for (const value of [entry.seq, formatDate(entry.at), entry.actor, entry.action, entry.collection || "",
      entry.purpose || ""]) {
      row.append(el("td", value));
    }
    const details = el("td", null, { class: "details" });
    details.append(detailsList(entry.details));
    row.append(details);
    tbody.append(row);
  }
  if (items.length === 0) {
    const row = el("tr");
    row.append(el("td", "No entries.", { colspan: "7" }));
    tbody.append(row);
  }
}

const DETAIL_ITEMS = 12;

function detailsList(details) {
  // An entry's details as labelled fields: "faces removed  2", lists cut short, nested fields flattened.
  const list = el("dl", null, { class: "fields" });
  const add = (name, value) => {
    list.append(el("dt", name.replaceAll("_", " ")));
    list.append(el("dd", detailText(value)));
  };
  const walk = (prefix, value) => {
    if (value && typeof value === "object" && !Array.isArray(value)) {
      const entries = Object.entries(value);
      if (entries.length === 0) add(prefix || "details", "none");
      for (const [name, inner] of entries) walk(name, inner); // nested fields by their own names
    } else {
      add(prefix || "details", value);
    }
  };
  walk("", details ?? {});
  return list;
}

function detailText(value) {
  if (value === null || value === undefined || value === "") return "—";
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (Array.isArray(value)) {
    if (value.length === 0) return "none";
    const shown = value.slice(0, DETAIL_ITEMS).map((item) => (item && typeof item === "object"
      ? Object.entries(item).map(([k, v]) => `${k.replaceAll("_", " ")} ${detailText(v)}`).join(", ")
      : String(item)));
    const more = value.length > DETAIL_ITEMS ? ` … and ${value.length - DETAIL_ITEMS} more` : "";
    return shown.join(value.some((item) => item && typeof item === "object") ? "; " : ", ") + more;
  }
  return String(value);
}

async function verifyChain() {
  clearError();
  const status = $("#chain-status");
  status.textContent = "Verifying…";
  status.className = "status";
  try {
    const answer = await api("/v1/audit/verify");
    if (answer.ok) {
      status.textContent = `Chain intact: ${answer.entries} entries`;
      status.classList.add("ok");
    } else {
      status.textContent = `Chain broken at entry ${answer.first_broken_seq}: ${answer.problem}`;
      status.classList.add("bad");
    }
  } catch (error) {
    status.textContent = "";
    handleError(error);
  }
}

// ---------- rights page ----------

function renderRights() {
  const main = mount("#tpl-rights");
  $("#rights-form", main).addEventListener("submit", (event) => {
    event.preventDefault();
    accessReport();
  });
  $("#erase-button", main).addEventListener("click", erase);
}

function rightsForm() {
  const form = $("#rights-form");
  if (!form.reportValidity()) return null;
  const data = new FormData();
  data.append("file", $("#person-photo").files[0]);
  data.append("reference", $("#reference").value.trim());
  return data;
}

async function accessReport() {
  clearError();
  const data = rightsForm();
  if (!data) return;
  const status = $("#access-status");
  $("#erase-status").textContent = "";
  status.textContent = "Looking…";
  try {
    const answer = await api("/v1/rights/access", { method: "POST", body: data });
    const review = answer.to_review.length
      ? ` ${answer.to_review.length} possible match(es) to review below: tick those that show the person, and Erase takes them too.`
      : "";
    status.textContent = `${answer.held.length} image(s) held (reference ${answer.reference}).${review}`;
    renderHeld(answer.held, "#access", "#access-wrap");
    renderHeld(answer.to_review, "#review", "#review-wrap", true);
  } catch (error) {
    status.textContent = "";
    handleError(error);
  }
}

function renderHeld(held, table, wrap, confirmable = false) {
  const tbody = $(`${table} tbody`);
  tbody.replaceChildren();
  for (const item of held) {
    const row = el("tr");
    if (confirmable) {
      const cell = el("td");
      const box = el("input", null, { type: "checkbox", value: String(item.face_id), "aria-label": `Face ${item.face_id} shows the person` });
      cell.append(box);
      row.append(cell);
    }
    for (const value of [item.collection, item.purpose, item.lawful_basis, item.source, formatDay(item.ingested_at),
      formatDay(item.delete_by), Number(item.distance).toFixed(2), likelihood(item.same_person)]) {
      row.append(el("td", value));
    }
    tbody.append(row);
  }
  $(wrap).hidden = held.length === 0;
}

async function erase() {
  clearError();
  const data = rightsForm();
  if (!data) return;
  const confirmed = [...document.querySelectorAll("#review tbody input:checked")].map((box) => box.value);
  if (confirmed.length) data.append("confirm", confirmed.join(","));
  if (!confirm("Erase every held image of this person? This cannot be undone.")) return;
  const status = $("#erase-status");
  status.className = "status";
  status.textContent = "Erasing…";
  try {
    const answer = await api("/v1/rights/erase", { method: "POST", body: data });
    const r = answer.receipt;
    const taken = answer.confirmed_face_ids.length ? `, including ${answer.confirmed_face_ids.length} confirmed possible match(es)` : "";
    const left = answer.left_to_review.length
      ? ` ${answer.left_to_review.length} possible match(es) not confirmed were left: run the access report to review them.`
      : "";
    // What the access report listed is gone now: only the receipt (and what is left to review) stays on the page.
    $("#access tbody").replaceChildren();
    $("#access-wrap").hidden = true;
    $("#access-status").textContent = "";
    status.classList.add("ok");
    status.textContent = `Erasure receipt ${r.id}: ${r.faces_removed} face(s) and ${r.images_removed} image(s) removed${taken} (reference ${r.reference}).${left}`;
    renderHeld(answer.left_to_review, "#review", "#review-wrap", true);
  } catch (error) {
    status.textContent = "";
    handleError(error);
  }
}

// ---------- people pages ----------

function personLabel(info) {
  const name = String(info.name || "").trim();
  return name || `Person #${info.id}`;
}

function personRef(info) {
  // A label that tells two people apart even when they carry the same name.
  const name = String(info.name || "").trim();
  return name ? `${name} (#${info.id})` : `Person #${info.id}`;
}

function faceCount(n) {
  return `${n} face${Number(n) === 1 ? "" : "s"}`;
}

function thumbnail(faceId, alt) {
  const img = el("img", null, { alt, width: "150", height: "150" });
  if (faceId === undefined || faceId === null) {
    img.alt = `${alt} (no face to show)`;
    return img;
  }
  imageUrl(`/v1/faces/${encodeURIComponent(faceId)}/thumbnail`).then((url) => { img.src = url; }).catch(() => {
    img.alt = `${alt} (thumbnail unavailable)`;
  });
  return img;
}

function peopleStatus(message, kind = "") {
  const status = $("#people-status");
  if (!status) return;
  status.textContent = message;
  status.className = kind ? `status ${kind}` : "status";
}

function showPeopleNotice() {
  if (!state.peopleNotice) return;
  peopleStatus(state.peopleNotice, "ok");
  state.peopleNotice = "";
}

async function renderPeople(args, params) {
  const main = mount("#tpl-people");
  showPeopleNotice();
  state.peopleSelected = [];
  const select = $("#people-collection", main);
  const hidden = $("#show-hidden", main);
  hidden.checked = params.get("hidden") === "true";
  const answer = await api("/v1/collections");
  const allowed = answer.items.filter((c) => c.people_allowed);
  for (const c of allowed) select.append(el("option", c.name, { value: c.name }));
  if (allowed.length === 0) {
    select.disabled = true;
    hidden.disabled = true;
    $("#people-note", main).textContent = "No collection you can see was declared for grouping faces into people.";
    return;
  }
  const wanted = params.get("collection") || state.peopleCollection;
  select.value = allowed.some((c) => c.name === wanted) ? wanted : allowed[0].name;
  const reload = () => {
    state.peopleCollection = select.value;
    const query = new URLSearchParams({ collection: select.value });
    if (hidden.checked) query.set("hidden", "true");
    history.replaceState(null, "", `#/people?${query}`);
    return loadPeople();
  };
  select.addEventListener("change", () => {
    peopleStatus("");
    reload();
  });
  hidden.addEventListener("change", reload);
  $("#merge-button", main).addEventListener("click", mergeSelected);
  return reload();
}

async function loadPeople() {
  clearError();
  const collection = $("#people-collection").value;
  const hidden = $("#show-hidden").checked;
  const load = ++state.peopleLoad;
  state.peopleSelected = [];
  updateMergeButton();
  const grid = $("#people");
  grid.setAttribute("aria-busy", "true");
  try {
    const answer = await api(`/v1/collections/${encodeURIComponent(collection)}/people?hidden=${hidden}&limit=1000`);
    if (load !== state.peopleLoad || !$("#people")) return;
    forgetObjectUrls();
    grid.replaceChildren();
    for (const person of answer.items) grid.append(personCard(person));
    const low = Number(answer.low_quality_faces) || 0;
    const note = [`${answer.items.length} ${answer.items.length === 1 ? "person" : "people"} in ${collection}.`];
    const alone = Number(answer.faces_alone) || 0;
    note.push(`${faceCount(alone)} ${alone === 1 ? "stands" : "stand"} alone (a person of one face): look there for someone grouping did not dare to join.`);
    note.push(`${faceCount(low)} too small, blurred or unsure to group.`);
    $("#people-note").textContent = note.join(" ");
    if (answer.items.length === 0) {
      grid.append(el("li", hidden
        ? "No people yet: an ingest key groups the collection's faces into people."
        : "No people to show. Tick \u201cShow hidden\u201d to see hidden people.", { class: "empty" }));
    }
  } catch (error) {
    if (load === state.peopleLoad) handleError(error);
  } finally {
    if (load === state.peopleLoad && $("#people")) grid.removeAttribute("aria-busy");
  }
}

function personCard(person) {
  const label = personLabel(person);
  const li = el("li", null, { class: person.hidden ? "person hidden-person" : "person", "data-person-id": person.id });
  const link = el("a", null, { class: "person-link", href: `#/person/${person.id}` });
  link.append(thumbnail(person.representative ? person.representative.face_id : null, `Face of ${label}`));
  link.append(el("span", label, { class: "person-name" }));
  li.append(link);
  const facts = el("p", faceCount(person.face_count), { class: "person-count" });
  if (person.hidden) facts.append(el("span", " (hidden)", { class: "tag" }));
  li.append(facts);
  const id = `select-person-${person.id}`;
  const pick = el("div", null, { class: "check" });
  const box = el("input", null, { type: "checkbox", id, "data-person-id": person.id });
  box.addEventListener("change", () => {
    const chosen = state.peopleSelected.filter((p) => p.id !== person.id);
    if (box.checked) chosen.push({ id: person.id, label, ref: personRef(person), name: person.name || "" });
    state.peopleSelected = chosen;
    li.classList.toggle("selected", box.checked);
    updateMergeButton();
  });
  pick.append(box, el("label", `Select ${label}`, { for: id }));
  li.append(pick);
  return li;
}

function updateMergeButton() {
  const button = $("#merge-button");
  const hint = $("#merge-hint");
  if (!button) return;
  const chosen = state.peopleSelected;
  button.disabled = chosen.length !== 2;
  if (chosen.length === 2) hint.textContent = `${chosen[1].ref} will join ${chosen[0].ref}.`;
  else if (chosen.length > 2) hint.textContent = `${chosen.length} selected: select exactly two to merge.`;
  else hint.textContent = chosen.length === 1 ? `${chosen[0].label} selected: select one more to merge.` : "";
}

async function mergeSelected() {
  clearError();
  if (state.peopleSelected.length !== 2) return;
  const [keep, other] = state.peopleSelected;
  if (!confirm(`Merge ${other.ref} into ${keep.ref}? All faces of ${other.ref} will belong to ${keep.ref}.`)) {
    return;
  }
  const button = $("#merge-button");
  button.disabled = true;
  peopleStatus("Merging…");
  try {
    const info = await api(`/v1/people/${encodeURIComponent(keep.id)}/merge`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ other: other.id }),
    });
    const renamed = info.name && info.name !== keep.name ? `, now named ${info.name}` : "";
    peopleStatus(`Merged ${other.ref} into ${keep.ref}${renamed}: ${faceCount(info.face_count)}.`, "ok");
    await loadPeople();
  } catch (error) {
    peopleStatus("");
    updateMergeButton();
    handleError(error);
  }
}

async function changePerson(id, change) {
  return api(`/v1/people/${encodeURIComponent(id)}`, {
    method: "PATCH",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(change),
  });
}

async function renderPerson(args) {
  const id = args[0];
  const main = mount("#tpl-person");
  showPeopleNotice();
  const detail = await api(`/v1/people/${encodeURIComponent(id)}`);
  let info = detail.info;
  const back = $("#back-to-people", main);
  back.href = `#/people?${new URLSearchParams({ collection: info.collection })}`;
  const nameInput = $("#person-name", main);
  nameInput.value = info.name || "";
  const hideButton = $("#hide-button", main);
  const show = () => {
    $("#person-title", main).textContent = personLabel(info);
    const facts = `${faceCount(info.face_count)} in ${info.collection}` + (info.hidden ? " · hidden from the people list" : "");
    $("#person-facts", main).textContent = facts;
    hideButton.textContent = info.hidden ? "Show" : "Hide";
  };
  show();

  $("#name-form", main).addEventListener("submit", async (event) => {
    event.preventDefault();
    clearError();
    try {
      info = await changePerson(info.id, { name: nameInput.value.trim() });
      show();
      peopleStatus(info.name ? `Saved the name ${info.name}.` : "Removed the name.", "ok");
    } catch (error) {
      peopleStatus("");
      handleError(error);
    }
  });

  hideButton.addEventListener("click", async () => {
    clearError();
    hideButton.disabled = true;
    try {
      info = await changePerson(info.id, { hidden: !info.hidden });
      show();
      peopleStatus(info.hidden
        ? `${personLabel(info)} is hidden: the people list shows them only with \u201cShow hidden\u201d ticked.`
        : `${personLabel(info)} is shown in the people list again.`, "ok");
    } catch (error) {
      handleError(error);
    } finally {
      hideButton.disabled = false;
    }
  });

  const grid = $("#person-faces", main);
  const splitButton = $("#split-button", main);
  const selected = new Set();
  for (const face of detail.faces) {
    const li = el("li", null, { class: "face", "data-face-id": face.face_id });
    const link = el("a", null, { class: "face-link", href: `#/image/${face.image_id}?face=${face.face_id}` });
    link.append(thumbnail(face.face_id, `Face ${face.face_id}`));
    const source = el("span", fileName(face.image_path), { class: "source", title: face.image_path });
    link.append(source);
    li.append(link);
    const boxId = `select-face-${face.face_id}`;
    const box = el("input", null, { type: "checkbox", id: boxId });
    box.addEventListener("change", () => {
      if (box.checked) selected.add(face.face_id);
      else selected.delete(face.face_id);
      li.classList.toggle("selected", box.checked);
      splitButton.disabled = selected.size === 0;
    });
    const pick = el("div", null, { class: "check" });
    pick.append(box, el("label", `Select face ${face.face_id}`, { for: boxId }));
    li.append(pick);
    grid.append(li);
  }
  if (detail.faces.length === 0) grid.append(el("li", "This person has no faces.", { class: "empty" }));

  splitButton.addEventListener("click", async () => {
    clearError();
    if (selected.size === 0) return;
    const count = faceCount(selected.size);
    if (!confirm(`Split ${count} out of ${personLabel(info)} into a new person?`)) return;
    splitButton.disabled = true;
    peopleStatus("Splitting…");
    try {
      const made = await api(`/v1/people/${encodeURIComponent(info.id)}/split`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ face_ids: [...selected] }),
      });
      state.peopleNotice = `Split ${count} out of ${personLabel(info)} into this new person.`;
      location.hash = `#/person/${made.id}`;
    } catch (error) {
      peopleStatus("");
      splitButton.disabled = selected.size === 0;
      handleError(error);
    }
  });
}

// ---------- every page: a cue on tables wider than the screen ----------

function markWideTables() {
  for (const wrap of document.querySelectorAll("#main .table-wrap")) {
    const wide = wrap.scrollWidth > wrap.clientWidth + 1;
    wrap.classList.toggle("wide", wide);
    wrap.classList.toggle("at-start", wrap.scrollLeft <= 1);
    wrap.classList.toggle("at-end", wrap.scrollLeft + wrap.clientWidth >= wrap.scrollWidth - 1);
    let cue = wrap.firstElementChild;
    if (!cue || !cue.classList.contains("scroll-cue")) {
      cue = el("p", "Scroll sideways for more columns →", { class: "scroll-cue", "aria-hidden": "true" });
      wrap.prepend(cue); // sticky at the wrap's left edge, so it stays in view while the table scrolls
      wrap.addEventListener("scroll", scheduleWideTables, { passive: true });
    }
    if (cue.hidden === wide) cue.hidden = !wide; // set only on change: each set is a mutation we observe
  }
}

let wideTablesPending = false;

function scheduleWideTables() {
  if (wideTablesPending) return;
  wideTablesPending = true;
  requestAnimationFrame(() => {
    wideTablesPending = false;
    markWideTables();
  });
}

// ---------- start ----------

new MutationObserver(scheduleWideTables).observe($("#main"), { childList: true, subtree: true, attributes: true,
  attributeFilter: ["hidden"] });
window.addEventListener("resize", scheduleWideTables);

$("#signout").addEventListener("click", signOut);
window.addEventListener("hashchange", route);
route();
