// The kiosk page: renders the state the daemon pushes over Server-Sent Events and
// posts the volunteer's taps back as station commands. No framework, no build step.
"use strict";

// Every word the page shows is in the message catalogue (firmware_app/catalogue/screen.py,
// the ui. area; devices. for the status lights), served as /texts.js: {key: [zh, en]}.
const TEXTS = window.SWAB_TEXTS || {};
const LANGS = ["zh-CN", "en"];
const ID_TYPES = ["resident_id", "passport", "hk_macau_permit", "taiwan_permit", "foreign_permanent", "none"];
const ICONS = { ok: "✔", confirm: "!", error: "✖", info: "…" };
const DEVICE_ORDER = ["idcard", "scanner", "camera", "printer", "store"];
const STALE_MS = 40000; // the server pings every 15 s; silence this long means a hung daemon

const $ = (id) => document.getElementById(id);
let state = null;
let chosenLang = LANGS.includes(localStorage.getItem("swab-lang")) ? localStorage.getItem("swab-lang") : null;
let lang = chosenLang || "zh-CN";
let lastFlash = null;
let firstAfterConnect = true;
let lastMessageAt = Date.now();
let source = null;

// the text of catalogue key `key` (ui. by default) in the screen's language, {fields} filled
function word(key, vars) {
  const pair = TEXTS[key];
  let s = pair ? pair[lang === "en" ? 1 : 0] : key;
  for (const [k, v] of Object.entries(vars || {})) s = s.replaceAll(`{${k}}`, v);
  return s;
}
function t(key, vars) { return word("ui." + key, vars); }
function pick(obj, key) { return TEXTS[`ui.${obj}.${key}`] ? t(`${obj}.${key}`) : key; }
function localized(zh, en) { return lang === "en" ? (en || zh || "") : (zh || en || ""); }
function other(zh, en) { return lang === "en" ? (en ? zh : "") : en || ""; }

// ------------------------------------------------------------------ sound
// Distinct WebAudio tones (no sound files): rising chirp = OK, two flat = confirm,
// low buzz = error. Kiosk Chromium runs with --autoplay-policy=no-user-gesture-required.
const TONES = {
  ok: [[880, 0.09, "sine"], [1320, 0.16, "sine"]],
  confirm: [[660, 0.16, "triangle"], [660, 0.16, "triangle"]],
  error: [[220, 0.22, "square"], [165, 0.22, "square"], [220, 0.3, "square"]],
  info: [[990, 0.08, "sine"]],
};
let audio = null;
function tone(level) {
  $("app").dataset.tone = level;
  if (!state || !state.ui.sound) return;
  try {
    audio = audio || new AudioContext();
    if (audio.state === "suspended") audio.resume();
    let at = audio.currentTime + 0.01;
    for (const [freq, dur, type] of TONES[level] || TONES.info) {
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.type = type;
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(0.0001, at);
      gain.gain.exponentialRampToValueAtTime(0.4, at + 0.01);
      gain.gain.exponentialRampToValueAtTime(0.0001, at + dur);
      osc.connect(gain).connect(audio.destination);
      osc.start(at);
      osc.stop(at + dur + 0.02);
      at += dur + 0.05;
    }
  } catch (err) {
    console.warn("no sound:", err);
  }
}

// ------------------------------------------------------------------ rendering
function setText(id, text) { const el = $(id); if (el.textContent !== text) el.textContent = text; }

function render() {
  document.documentElement.lang = lang;
  document.title = t("title");
  for (const el of document.querySelectorAll("[data-t]")) el.textContent = t(el.dataset.t);
  $("lang").textContent = t("other_lang");
  if (!state) { setText("message", t("waiting")); return; }
  const s = state.snapshot;

  const op = s.operator;
  setText("operator", op ? op.name : t("no_operator"));
  $("operator").classList.toggle("missing", !op);
  setText("mode", s.mode ? pick("modes", String(s.mode)) : "—");
  const today = s.today || {};
  setText("today", t("today_value", { people: today.people ?? 0, tubes: today.tubes ?? 0 }));

  // the big state panel: colour, icon and words all say the same thing
  const level = ["ok", "confirm", "error"].includes(s.level) ? s.level : "info";
  $("state").dataset.level = level;
  setText("icon", ICONS[level]);
  const text = localized(s.message, s.message_en) || t("waiting");
  setText("message", text);
  // long reasons shrink rather than spill out of the panel
  const weight = [...text].reduce((n, ch) => n + (ch.charCodeAt(0) > 0x2e80 ? 1 : 0.55), 0);
  $("message").className = weight > 22 ? "longer" : weight > 12 ? "long" : "";
  setText("message-alt", other(s.message, s.message_en));
  const detail = s.detail || {};
  $("state").dataset.alert = detail.alert ? "1" : "";
  const recall = detail.recall && Array.isArray(detail.people) ? detail.people : null;
  $("recall").hidden = !recall;
  $("state").classList.toggle("recall", !!recall);
  if (recall) {
    setText("recall-title", t("recall_title", { n: recall.length }));
    $("recall-list").replaceChildren(...recall.map((who) => { const li = document.createElement("li"); li.textContent = who; return li; }));
  }
  const next = s.next_step ? localized(s.next_step.message, s.next_step.message_en) : "";
  setText("next", next && !text.includes(next) ? t("next") + next : "");
  const who = recall ? null : s.pending && s.pending.name ? s.pending : s.last;
  $("person").hidden = !who;
  if (who) {
    setText("person-label", t(who === s.last ? "last_person" : "pending_person") + (who.voided ? " · " + t("voided") : ""));
    $("person").classList.toggle("voided", !!who.voided);
    const code = $("code");
    code.className = "chip " + (who.colour || "none");
    code.textContent = who.colour ? pick("colours", who.colour) : "";
    code.hidden = !who.colour;
    setText("person-name", who.name || "");
    setText("person-id", who.id || "");
    setText("person-source", who.source ? pick("sources", who.source) : "");
  }
  // a pending confirm takes the action buttons' place (the two answers are what matters
  // now); the tube and its fill stay in view
  $("pending-actions").hidden = !s.pending;
  $("actions").hidden = !!s.pending;
  const answers = pendingAnswers(s.pending);
  for (const b of document.querySelectorAll("[data-cmd=confirm_duplicate]")) b.textContent = t(answers.yesLabel);
  for (const b of document.querySelectorAll("[data-cmd=reject_duplicate]")) b.textContent = t(answers.noLabel);

  // the tube and its fill
  const tube = s.tube;
  setText("tube-id", tube ? tube.id : t("no_tube"));
  setText("count", tube ? String(tube.count) : "0");
  setText("capacity", tube ? " / " + tube.capacity : "");
  const single = $("single");
  single.hidden = !(tube && tube.single_reason);
  if (tube && tube.single_reason) single.textContent = t("single") + "·" + pick("single_reasons", tube.single_reason);
  renderDots(tube);

  // actions: enabled only when they can mean something
  const can = {
    manual_entry: !!op,
    people: !!(op && (tube && tube.count > 0 || s.last)),
    close_tube: !!(op && tube && tube.count > 0),
    box: !!(s.box || (s.boxes_closed || []).length),
    reprint_label: !!op,
    replace_tube: !!(op && (tube && tube.count > 0 || s.last)),
    void_last: !!(op && s.last && !s.last.voided),
    switch_mode: !!op,
    // pre-labelled single tube: the answer is scanning that tube, not a tap
    confirm_duplicate: !!s.pending && !s.pending.needs_tube_scan,
    reject_duplicate: !!s.pending,
    sign_out: !!op,
  };
  for (const b of document.querySelectorAll("button[data-cmd]")) b.disabled = !can[b.dataset.cmd];
  // household: the tube closes by hand, per family; the button says it is the next step
  $("actions").querySelector("[data-cmd=close_tube]").classList.toggle("hint", !!(tube && tube.count > 0 && tube.mode === "household"));
  renderUnsent(s);
  // a command card (SWABCMD:open_view:manual|box|people) opens that page here
  if (detail.open && state.flash.n !== render.opened) {
    render.opened = state.flash.n;
    onAction({ manual: "manual_entry", box: "box", people: "people" }[detail.open]);
  }
  if (!$("people").hidden) renderPeople(s);
  if (!$("boxes").hidden) renderBox(s);
  if (!$("tech").hidden) renderTech(s);
  afterManual(s);

  renderLights(s);
  renderProblems(state.problems || []);
}

// What the confirm/reject taps mean depends on what waits: a person seen today already,
// a yellow/red code or key person for a separate single tube, or a broken-tube swap.
function pendingAnswers(p) {
  if (p && p.duplicate_of) return { yes: "confirm_duplicate", no: "reject_duplicate", yesLabel: "confirm_duplicate", noLabel: "reject_duplicate" };
  if (p && p.kind === "replace_tube") return { yes: "confirm", no: "reject", yesLabel: "confirm_replace", noLabel: "reject" };
  if (p && p.kind === "command") return { yes: "confirm", no: "reject", yesLabel: "confirm_command", noLabel: "reject" };
  if (p && p.needs_tube_scan) return { yes: "confirm", no: "reject", yesLabel: "scan_single", noLabel: "reject" };
  if (p && p.single_reason) return { yes: "confirm", no: "reject", yesLabel: "confirm_single", noLabel: "reject" };
  return { yes: "confirm", no: "reject", yesLabel: "confirm_duplicate", noLabel: "reject_duplicate" };
}

function renderDots(tube) {
  const dots = $("dots");
  const cap = tube ? Math.min(tube.capacity, 20) : 0;
  const count = tube ? tube.count : 0;
  if (dots.children.length !== cap) {
    dots.replaceChildren(...Array.from({ length: cap }, () => document.createElement("i")));
  }
  [...dots.children].forEach((d, i) => d.classList.toggle("on", i < count));
  dots.classList.toggle("twenty", cap > 10);
}

// A device's or the broker's reason in a few words (devices. in the catalogue): the footer
// slot has room for a few characters; the raw reason is in the technician panel (tap the footer).
const SHORT = [
  [/paper/i, "paper"], [/refused/i, "refused"], [/timed? ?out/i, "timeout"],
  [/not found|no such|unplug|disconnect|gone/i, "unplugged"],
  [/input\/output|i\/o|errno 5/i, "io_error"], [/auth|not authori[sz]ed/i, "auth"],
  [/tls|ssl|certificate/i, "tls"], [/dns|resolve|name or service/i, "dns"],
  [/unreachable|network/i, "network"], [/cover/i, "cover_open"],
];
function shortReason(reason) {
  if (!reason) return "";
  if ([...reason].length <= 6 && /^[\u2e80-\u9fff]+$/.test(reason)) return reason; // already short zh-CN words
  // a raw reason in English, or zh-CN words that contain the short ones (devices.paper in a longer text)
  for (const [re, key] of SHORT) if (re.test(reason) || reason.includes((TEXTS["devices." + key] || [])[0] || "\u0000")) return word("devices." + key);
  return [...reason].length <= 4 ? reason : word("devices.fault");
}
const allLights = [];

function light(label, status, detail, full) {
  allLights.push([label, status, full || detail || ""]);
  detail = detail || shortReason(full);
  const li = document.createElement("span");
  li.className = "light " + status;
  const dot = document.createElement("i");
  const b = document.createElement("b");
  b.textContent = label;
  li.append(dot, b);
  if (detail) { const d = document.createElement("small"); d.textContent = detail; li.append(d); }
  li.title = full || "";
  return li;
}

function brokerStatus(b) {
  if (b === null || b.url === "") return { status: "off", detail: t("offline_only") };
  const ok = "connected" in b ? !!b.connected : !!b.ok;
  return { status: ok ? "ok" : "bad", detail: ok ? "" : localized(b.error || b.reason, b.error_en) };
}

function renderLights(s) {
  allLights.length = 0;
  const items = [];
  const devices = s.devices || {};
  const names = DEVICE_ORDER.filter((n) => n in devices).concat(Object.keys(devices).filter((n) => !DEVICE_ORDER.includes(n)))
    .filter((n) => !(n === "broker" && s.broker !== undefined)); // one broker light, from the uplink
  for (const name of names) {
    const d = typeof devices[name] === "object" && devices[name] ? devices[name] : { ok: !!devices[name] };
    items.push(light(pick("devices", name), d.ok ? "ok" : "bad", "", d.ok ? "" : d.reason || t("tech_hint")));
  }
  // broker: {ok, reason} or the uplink's state() {connected, url, error, error_en}; null = none
  const broker = s.broker === undefined ? undefined : brokerStatus(s.broker);
  if (broker) items.push(broker.status === "bad" ? light(t("broker"), "bad", "", broker.detail || t("tech_hint")) : light(t("broker"), broker.status, broker.detail));
  if ("backlog" in s) {
    const n = Number(s.backlog) || 0;
    const u = s.unsent || {};
    const status = u.level === "alarm" ? "bad" : u.level === "warn" ? "warn" : n === 0 ? "ok" : broker && broker.status === "ok" ? "busy" : "warn";
    items.push(light(t("backlog_count", { n }), status, u.oldest_min ? age(u.oldest_min) : "",
      u.oldest_min ? t("unsent_" + (u.level === "alarm" ? "alarm" : "warn"), { n, age: age(u.oldest_min) }) : ""));
  }
  if (s.labels_waiting) items.push(light(t("labels_waiting_count", { n: s.labels_waiting }), "warn"));
  $("lights").replaceChildren(...items);
}

function age(minutes) {
  const h = Math.floor(minutes / 60), m = minutes % 60;
  return h ? t("hours", { h, m }) : t("minutes", { m });
}

// records waiting too long for the district: amber at [ui] unsent_warn_minutes, red at
// unsent_alarm_minutes, with the oldest one's age (the daemon speaks each level once)
function renderUnsent(s) {
  const u = s.unsent || {};
  const show = u.level === "warn" || u.level === "alarm";
  $("unsent").hidden = !show;
  if (!show) return;
  $("unsent").dataset.level = u.level;
  setText("unsent", t(u.level === "alarm" ? "unsent_alarm" : "unsent_warn", { n: s.backlog ?? "?", age: age(u.oldest_min || 0) }));
}

function renderTech(s) {
  const rows = allLights.map(([label, status, full]) => {
    const li = document.createElement("li");
    li.className = "light " + status;
    const b = document.createElement("b");
    b.textContent = label;
    li.append(document.createElement("i"), b, " ", full);
    return li;
  });
  for (const p of state.problems || []) {
    const li = document.createElement("li");
    li.textContent = [p.key, localized(p.message, p.message_en)].filter(Boolean).join(" · ");
    rows.push(li);
  }
  $("tech-list").replaceChildren(...rows);
}

function renderProblems(problems) {
  $("problems").hidden = problems.length === 0;
  $("problem-list").replaceChildren(...problems.map((p) => {
    const li = document.createElement("li");
    const where = [p.key, p.line ? t("line", { line: p.line }) : ""].filter(Boolean).join(" · ");
    if (where) { const k = document.createElement("code"); k.textContent = where; li.append(k, " "); }
    li.append(localized(p.message, p.message_en));
    const alt = other(p.message, p.message_en);
    if (alt) { const small = document.createElement("small"); small.textContent = alt; li.append(small); }
    return li;
  }));
}

function flash(level) {
  const panel = $("state");
  panel.classList.remove("flash");
  void panel.offsetWidth; // restart the animation
  panel.classList.add("flash");
  tone(level);
}

// ------------------------------------------------------------------ actions
async function post(path, body) {
  try {
    const res = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    if (!res.ok) {
      const data = await res.json().catch(() => ({}));
      throw new Error(localized(data.error_zh, data.error) || res.status);
    }
  } catch (err) {
    localNotice(t("send_failed", { error: err.message }));
  }
}

function localNotice(text) {
  const div = $("local-error");
  div.textContent = text;
  div.hidden = false;
  tone("error");
  clearTimeout(localNotice.timer);
  localNotice.timer = setTimeout(() => { div.hidden = true; }, 8000);
}

function command(name, args) { return post("/api/command", { name, args: args || {} }); }

function ask(title, buttons) {
  setText("dialog-title", title);
  $("dialog-buttons").replaceChildren(...buttons.map(([label, cls, action]) => {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "act " + cls;
    b.textContent = label;
    b.addEventListener("click", () => { $("dialog").hidden = true; if (action) action(); });
    return b;
  }));
  $("dialog").hidden = false;
}

function onAction(name) {
  const s = state ? state.snapshot : {};
  if (name === "manual_entry") {
    openManual();
  } else if (name === "people") {
    openSheet("people"); renderPeople(s);
  } else if (name === "box") {
    Box.courierFor = null; Box.value = ""; openSheet("boxes"); renderBox(s);
  } else if (name === "replace_tube") {
    const tube = s.tube && s.tube.count ? s.tube.id : s.last ? s.last.tube_id : "";
    ask(t("confirm_replace_tube", { tube }), [[t("yes"), "danger", () => command("replace_tube", tube ? { tube_id: tube } : {})], [t("cancel"), "", null]]);
  } else if (name === "void_last") {
    const who = s.last ? `${s.last.name || ""} ${s.last.id || ""}`.trim() : "";
    ask(t("confirm_void", { who }), [[t("yes"), "danger", () => command("void_last")], [t("cancel"), "", null]]);
  } else if (name === "sign_out") {
    ask(t("confirm_sign_out"), [[t("yes"), "danger", () => command("sign_out")], [t("cancel"), "", null]]);
  } else if (name === "switch_mode") {
    const modes = ["1", "10", "20", "household"].map((m) =>
      [pick("modes", m), String(s.mode) === m ? "current" : "", () => command("switch_mode", { mode: m })]);
    ask(t("choose_mode"), modes.concat([[t("cancel"), "", null]]));
  } else if (name === "confirm_duplicate") {
    command(pendingAnswers(s.pending).yes);
  } else if (name === "reject_duplicate") {
    command(pendingAnswers(s.pending).no);
  } else {
    command(name);
  }
}

// ------------------------------------------------------------------ sheets
function openSheet(id) {
  for (const el of document.querySelectorAll(".sheet")) el.hidden = el.id !== id;
}
function closeSheets() { for (const el of document.querySelectorAll(".sheet")) el.hidden = true; }

// the open tube's people, masked; any one voided (the void command, after a confirm)
function renderPeople(s) {
  const tube = s.tube;
  const people = (tube && tube.people) || [];
  setText("people-title", tube ? t("people_title", { tube: tube.id, n: people.length }) : t("no_people"));
  $("people-list").replaceChildren(...people.map((p, i) => {
    const li = document.createElement("li");
    li.className = p.voided ? "voided" : "";
    const n = document.createElement("span"); n.className = "n"; n.textContent = String(i + 1);
    const name = document.createElement("b"); name.textContent = p.name;
    const id = document.createElement("span"); id.className = "id"; id.textContent = p.id || "—";
    const b = document.createElement("button");
    b.type = "button"; b.className = "act danger"; b.dataset.rid = p.rid;
    b.textContent = p.voided ? t("voided") : t("void");
    b.disabled = !!p.voided;
    b.addEventListener("click", () => ask(t("void_one", { n: i + 1, who: `${p.name} ${p.id}`.trim() }),
      [[t("yes"), "danger", () => command("void", { record_id: p.rid })], [t("cancel"), "", null]]));
    li.append(n, name, id, b);
    return li;
  }));
  if (!people.length) { const li = document.createElement("li"); li.textContent = t("no_people"); $("people-list").append(li); }
}

// the box view: tubes in the open box, the packer's count on a keypad, close; closed
// boxes waiting for the courier, handed over by name (or by scanning the courier's code)
const Box = { value: "", courierFor: null, keys: "digits" };
function renderBox(s) {
  const box = s.box;
  setText("box-title", box ? t("box_title", { box: box.id, n: box.tubes, cap: box.capacity, people: box.people ?? "" }) : t("no_box"));
  $("box-tubes").replaceChildren(...(box ? box.tube_list || [] : []).map((tb) => {
    const li = document.createElement("li");
    li.textContent = t("box_tube", { id: tb.id, people: tb.people }) + (tb.single ? " · " + t("single") : "");
    return li;
  }));
  const status = $("box-status");
  if (!box) { status.textContent = ""; status.className = ""; }
  else if (box.counted === null || box.counted === undefined) { status.textContent = t("count_prompt"); status.className = ""; }
  else if (box.blocked || box.counted !== box.tubes) { status.textContent = t("count_blocked", { listed: box.tubes, counted: box.counted }); status.className = "bad"; }
  else { status.textContent = t("count_ok", { listed: box.tubes }); status.className = "good"; }
  const closed = s.boxes_closed || [];
  const rows = closed.map((b) => {
    const div = document.createElement("div");
    div.className = "closed-box";
    const label = document.createElement("span");
    label.textContent = t("closed_box", { id: b.id, tubes: b.tubes, people: b.people });
    const btn = document.createElement("button");
    btn.type = "button"; btn.className = "act" + (Box.courierFor === b.id ? " current" : ""); btn.dataset.box = b.id;
    btn.textContent = t("handover");
    btn.addEventListener("click", () => { Box.courierFor = b.id; Box.value = ""; Pinyin.clear(); Box.keys = "pinyin"; renderBox(state.snapshot); });
    div.append(label, btn);
    return div;
  });
  if (closed.length) { const h = document.createElement("p"); h.textContent = t("closed_boxes") + " · " + t("courier_hint"); rows.unshift(h); }
  $("box-closed").replaceChildren(...rows);
  const courier = Box.courierFor && closed.some((b) => b.id === Box.courierFor);
  if (!courier) { Box.courierFor = null; if (Box.keys === "pinyin") { Box.keys = "digits"; Box.value = ""; } }
  setText("box-entry-label", t(courier ? "courier_label" : "count_label"));
  setText("box-value", Box.value + (courier && Pinyin.buffer ? " " + Pinyin.buffer : ""));
  Keys.render($("box-keys"), Box.keys, onBoxKey);
  $("box-count").textContent = t(courier ? "handover_submit" : "count_submit");
  $("box-count").disabled = courier ? !Box.value.trim() : !box || Box.value === "";
  $("box-close").disabled = !box || !box.tubes || box.counted !== box.tubes || !!box.blocked;
}
function onBoxKey(k) {
  if (Box.keys === "pinyin" || Box.keys === "letters") Box.value = textKey(Box.value, k, Box, "box");
  else if (k === "BS") Box.value = Box.value.slice(0, -1);
  else if (k === "CLR") Box.value = "";
  else if (/^[0-9]$/.test(k) && Box.value.length < 4) Box.value = (Box.value === "0" ? "" : Box.value) + k;
  renderBox(state.snapshot);
}
function onBoxSubmit() {
  const s = state.snapshot;
  if (Box.courierFor) {
    const courier = Box.value.trim(), box = Box.courierFor;
    ask(t("confirm_handover", { box, courier }), [[t("yes"), "confirm", () => { command("handover_box", { courier, box_id: box }); Box.courierFor = null; Box.value = ""; Box.keys = "digits"; }], [t("cancel"), "", null]]);
  } else if (s.box && Box.value !== "") {
    command("box_count", { count: Number(Box.value) });
    Box.value = "";
  }
}

// a letter key for a name (pinyin or Latin): returns the new text. owner.keys says which
function textKey(text, k, owner, kind) {
  if (k.startsWith("MODE:")) { owner.keys = k === "MODE:letters" && owner.keys === "pinyin" ? "letters" : "pinyin"; Pinyin.clear(); return text; }
  if (owner.keys === "pinyin") {
    if (k.startsWith("CAND:")) { Pinyin.clear(); return text + k.slice(5); }
    if (/^[a-z]$/.test(k)) { Pinyin.feed(k); return text; }
    if (k === "SPACE") { const c = Pinyin.candidates(); Pinyin.clear(); return c.length ? text + c[0] : text; }
    if (k === "BS") { if (Pinyin.buffer) { Pinyin.back(); return text; } return [...text].slice(0, -1).join(""); }
    if (k === "CLR") { Pinyin.clear(); return ""; }
    return text;
  }
  if (k === "BS") return [...text].slice(0, -1).join("");
  if (k === "CLR") return "";
  if (k === "SPACE") return text + " ";
  return k.length === 1 ? text + k : text;
}

// manual entry
const M = { type: "resident_id", id_number: "", name: "", phone: "", field: "id_number", keys: "idnum", sentFlash: null };
const NUMBER_KEYS = { resident_id: "idnum", passport: "letters", hk_macau_permit: "letters", taiwan_permit: "digits", foreign_permanent: "letters" };
function openManual() {
  $("m-error").textContent = "";
  openSheet("manual");
  setField(M.type === "none" ? "name" : "id_number");
}
function setField(field) {
  M.field = field;
  M.keys = field === "name" ? "pinyin" : field === "phone" ? "digits" : NUMBER_KEYS[M.type] || "digits";
  Pinyin.clear();
  renderManual();
}
function renderManual() {
  $("m-types").replaceChildren(...ID_TYPES.map((type) => {
    const b = document.createElement("button");
    b.type = "button"; b.className = "act" + (M.type === type ? " current" : ""); b.dataset.type = type;
    b.textContent = pick("id_types", type);
    b.addEventListener("click", () => { M.type = type; M.id_number = ""; setField(type === "none" ? "name" : "id_number"); });
    return b;
  }));
  const none = M.type === "none";
  $("manual").querySelector("[data-field=id_number]").hidden = none;
  setText("m-id_number", M.id_number);
  const problem = none ? "" : checkNumber(M.type, M.id_number);
  const check = $("m-check");
  check.textContent = none ? t("no_number") : problem || t("number_ok");
  check.className = none ? "" : problem ? "bad" : "good";
  if ($("m-name").value !== M.name) $("m-name").value = M.name;
  $("m-name").placeholder = M.field === "name" && Pinyin.buffer ? Pinyin.buffer : "";
  setText("m-phone", M.phone);
  for (const el of $("manual").querySelectorAll(".fld")) el.classList.toggle("active", el.dataset.field === M.field);
  Keys.render($("m-keys"), M.keys, onManualKey);
}
function onManualKey(k) {
  if (M.field === "name") {
    M.name = textKey(M.name, k, M, "name").slice(0, 40);
  } else if (k.startsWith("MODE:")) {
    M.keys = k.slice(5);
  } else {
    const limit = M.field === "phone" ? 12 : 20;
    let v = M[M.field];
    if (k === "BS") v = v.slice(0, -1);
    else if (k === "CLR") v = "";
    else if (k.length === 1 && k !== " " && v.length < limit && (M.field !== "phone" || /[0-9]/.test(k))) v += k.toUpperCase();
    M[M.field] = v;
    // a complete resident ID number moves on to the name by itself
    if (M.field === "id_number" && M.type === "resident_id" && v.length === 18 && !checkNumber(M.type, v)) { setField("name"); return; }
  }
  renderManual();
}
function onNameKeydown(e) {
  // a USB keyboard feeds the same pinyin buffer; a system IME's composition passes through
  if (M.keys !== "pinyin" || e.isComposing || e.ctrlKey || e.altKey || e.metaKey) return;
  let k = null;
  if (/^[a-zA-Z]$/.test(e.key)) k = e.key.toLowerCase();
  else if (Pinyin.buffer && /^[1-8]$/.test(e.key)) k = "CAND:" + (Pinyin.candidates()[Number(e.key) - 1] || "");
  else if (Pinyin.buffer && (e.key === " " || e.key === "Enter")) k = "SPACE";
  else if (Pinyin.buffer && e.key === "Backspace") k = "BS";
  if (k === null || k === "CAND:") return;
  e.preventDefault();
  onManualKey(k);
}
function onManualSubmit() {
  const name = M.name.trim();
  const problem = !name ? t("need_name") : M.type !== "none" ? checkNumber(M.type, M.id_number)
    : !M.phone ? t("need_phone") : "";
  const phoneBad = M.phone && !/^[0-9]{7,12}$/.test(M.phone) ? t("bad_phone") : "";
  if (problem || phoneBad) { $("m-error").textContent = problem || phoneBad; tone("error"); return; }
  const args = { name, id_type: M.type };
  if (M.type !== "none") args.id_number = M.id_number;
  if (M.phone) args.phone = M.phone;
  M.sentFlash = state ? state.flash.n : 0;
  closeSheets();
  // the full number leaves the page once sent (kept in memory only, for a refusal to reopen)
  $("m-id_number").textContent = ""; $("m-name").value = ""; $("m-phone").textContent = "";
  command("manual_entry", args);
}
// after a manual entry is sent: a refusal reopens the form with its reason (nothing typed
// is lost); a registration clears it for the next person
function afterManual(s) {
  if (M.sentFlash === null || state.flash.n === M.sentFlash) return;
  M.sentFlash = null;
  if (s.level === "error") {
    openSheet("manual");
    renderManual();
    $("m-error").textContent = localized(s.message, s.message_en);
  } else {
    Object.assign(M, { type: "resident_id", id_number: "", name: "", phone: "" });
    renderManual();
  }
}

// ------------------------------------------------------------------ live connection
function setConn(conn) {
  $("app").dataset.conn = conn;
  $("offline").hidden = conn === "open";
}

function connect() {
  if (source) source.close();
  source = new EventSource("/events");
  source.addEventListener("open", () => { lastMessageAt = Date.now(); firstAfterConnect = true; });
  source.addEventListener("state", (ev) => {
    lastMessageAt = Date.now();
    state = JSON.parse(ev.data);
    if (!chosenLang) lang = state.ui.language === "en" ? "en" : "zh-CN";
    setConn("open");
    render();
    // after a (re)connect show the state silently; beep only for news seen live
    if (!firstAfterConnect && state.flash.n !== lastFlash) flash(state.flash.level);
    firstAfterConnect = false;
    lastFlash = state.flash.n;
    $("app").dataset.rev = state.rev;
  });
  source.addEventListener("ping", () => { lastMessageAt = Date.now(); });
  source.addEventListener("error", () => {
    // EventSource retries by itself (server sent retry: 1000); meanwhile say so clearly
    setConn("closed");
    if (source.readyState === EventSource.CLOSED) setTimeout(connect, 1000);
  });
}

setInterval(() => {
  if (Date.now() - lastMessageAt > STALE_MS) { setConn("closed"); lastMessageAt = Date.now(); connect(); }
}, 5000);

document.addEventListener("DOMContentLoaded", () => {
  for (const b of document.querySelectorAll("button[data-cmd]")) {
    b.addEventListener("click", () => onAction(b.dataset.cmd));
  }
  for (const b of document.querySelectorAll("[data-close]")) b.addEventListener("click", closeSheets);
  $("lights").addEventListener("click", () => { openSheet("tech"); renderTech(state ? state.snapshot : {}); });
  for (const el of $("manual").querySelectorAll(".fld")) el.addEventListener("click", () => setField(el.dataset.field));
  $("m-name").addEventListener("keydown", onNameKeydown);
  $("m-name").addEventListener("input", () => { M.name = $("m-name").value; });
  $("m-submit").addEventListener("click", onManualSubmit);
  $("box-count").addEventListener("click", onBoxSubmit);
  $("box-close").addEventListener("click", () => command("close_box"));
  $("lang").addEventListener("click", () => {
    lang = chosenLang = lang === "en" ? "zh-CN" : "en";
    localStorage.setItem("swab-lang", lang); // the volunteer's choice outlives a reload
    render();
  });
  // the first touch unlocks audio where the autoplay policy needs a gesture
  document.addEventListener("pointerdown", () => { if (audio && audio.state === "suspended") audio.resume(); });
  render();
  setConn("connecting");
  connect();
});
