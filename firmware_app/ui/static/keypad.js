// The glove-sized on-screen keys of the kiosk page and its small built-in pinyin input.
//
// Keys.render(container, mode, onKey) draws one of: "digits" (0-9, backspace), "idnum"
// (0-9, X, backspace, ABC), "letters" (A-Z, 0-9 row, backspace, 123), "pinyin" (a-z with a
// candidate bar, backspace, ABC for Latin letters). onKey gets a character, "BS", "CLR",
// or "MODE:<mode>". The pinyin mode keeps its own buffer: Pinyin.feed/candidates/pick.
//
// The pinyin table holds ~350 characters common in Chinese names (surnames and given
// names) by syllable, most common first. A name with a character not in it is typed
// with a USB keyboard: the same pinyin buffer takes its letters (1-6 or Space picks), and
// a system input method (fcitx5), where the image has one, composes straight into the
// field untouched; or, last resort, the name is entered in Latin letters (ZHANG XIAOMING).
"use strict";

// the table is the catalogue's (firmware_app/catalogue/screen.py PINYIN), served in /texts.js
const PINYIN = window.SWAB_PINYIN || {};

const Pinyin = {
  buffer: "",
  feed(ch) { if (this.buffer.length < 6) this.buffer += ch.toLowerCase(); },
  back() { this.buffer = this.buffer.slice(0, -1); },
  clear() { this.buffer = ""; },
  // exact syllable first, then syllables it starts (x -> xiao, xin, ...), at most 8
  candidates() {
    const b = this.buffer;
    if (!b) return [];
    const exact = [...(PINYIN[b] || "")];
    const more = Object.keys(PINYIN).filter((k) => k !== b && k.startsWith(b)).flatMap((k) => [...PINYIN[k]]);
    return [...new Set([...exact, ...more])].slice(0, 8);
  },
};

const LAYOUTS = {
  digits: [["1", "2", "3"], ["4", "5", "6"], ["7", "8", "9"], ["CLR", "0", "BS"]],
  idnum: [["1", "2", "3", "X"], ["4", "5", "6", "MODE:letters"], ["7", "8", "9", "CLR"], ["0", "BS"]],
  letters: [["1", "2", "3", "4", "5", "6", "7", "8", "9", "0"], ["Q", "W", "E", "R", "T", "Y", "U", "I", "O", "P"], ["A", "S", "D", "F", "G", "H", "J", "K", "L"],
    ["Z", "X", "C", "V", "B", "N", "M", "BS"], ["MODE:idnum", "SPACE", "CLR"]],
  pinyin: [["q", "w", "e", "r", "t", "y", "u", "i", "o", "p"], ["a", "s", "d", "f", "g", "h", "j", "k", "l"],
    ["z", "x", "c", "v", "b", "n", "m", "BS"], ["MODE:letters", "SPACE", "CLR"]],
};
// a key's label: its symbol, or its word from the catalogue (t is app.js's, called at render time)
const KEY_LABELS = { BS: "⌫", "MODE:letters": "ABC", "MODE:idnum": "123" };
const KEY_WORDS = { CLR: "key_clear", SPACE: "key_space", "MODE:pinyin": "key_pinyin" };
function keyLabel(k) { return KEY_WORDS[k] ? t(KEY_WORDS[k]) : KEY_LABELS[k] || k; }

const Keys = {
  render(container, mode, onKey) {
    container.dataset.mode = mode;
    const rows = [];
    if (mode === "pinyin") {
      const bar = document.createElement("div");
      bar.className = "cands";
      const buf = document.createElement("span");
      buf.className = "buf";
      buf.textContent = Pinyin.buffer || t("key_pinyin");
      bar.append(buf, ...Pinyin.candidates().map((ch, i) => Keys.key(ch, "CAND:" + ch, "cand", onKey, i + 1)));
      rows.push(bar);
    }
    for (const row of LAYOUTS[mode]) {
      const div = document.createElement("div");
      div.className = "row";
      div.append(...row.map((k) => Keys.key(keyLabel(k), k, k.length > 1 ? "fn" : "", onKey)));
      rows.push(div);
    }
    container.replaceChildren(...rows);
  },
  key(label, value, cls, onKey, n) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "key " + (cls || "");
    b.dataset.key = value;
    b.textContent = label;
    if (n) b.dataset.n = n;
    b.addEventListener("click", () => onKey(value));
    return b;
  },
};

// Checks that mirror the station's (firmware_app/station/people.py), live while typing;
// the station checks again. "" = fine, else the reason (ui.check.* in the screen's language).
const ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
function idCheckChar(first17) {
  return "10X98765432"[[...first17].reduce((n, d, i) => n + Number(d) * ID_WEIGHTS[i], 0) % 11];
}
function checkNumber(type, n) {
  if (type === "none") return "";
  if (!n) return t("check.need_number");
  if (type === "resident_id") {
    if (!/^[0-9]{17}[0-9X]$/.test(n)) return t("check.resident_length", { n: n.length });
    const y = +n.slice(6, 10), m = +n.slice(10, 12), d = +n.slice(12, 14);
    const birth = new Date(y, m - 1, d);
    if (birth.getMonth() !== m - 1 || birth.getDate() !== d || y < 1900 || birth > new Date()) return t("check.birth_date");
    if (idCheckChar(n.slice(0, 17)) !== n[17]) return t("check.check_digit");
    return "";
  }
  const patterns = {
    passport: /^[A-Z0-9]{5,20}$/,
    hk_macau_permit: /^[HM][0-9]{8}([0-9]{2})?$/,
    taiwan_permit: /^[0-9]{8}([0-9]{2})?$/,
    foreign_permanent: /^([A-Z]{3}[0-9]{12}|9[0-9]{16}[0-9X])$/,
  };
  if (patterns[type] && !patterns[type].test(n)) return t("check." + type);
  if (type === "foreign_permanent" && n.length === 18 && idCheckChar(n.slice(0, 17)) !== n[17]) return t("check.check_digit");
  return "";
}
