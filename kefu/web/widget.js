/*! kefu chat widget — plain ES2020, no dependencies, no build step. Served by kefu at /widget.js.
 *
 * Embed with one tag (see docs/widget.md for every option):
 *   <script src="https://kefu.example.com/widget.js" data-kefu-token-url="/my-backend/kefu-token" defer></script>
 *
 * Safety rules of this file: model and user text only ever reach the page through textContent /
 * createTextNode / setAttribute of checked values — never innerHTML. Links are http(s) or mailto only.
 */
(() => {
  "use strict";
  if (window.Kefu && window.Kefu.version) return; // loaded twice: keep the first

  const VERSION = "0.2.0";

  // ---------------------------------------------------------------- configuration (data-kefu-* attributes)
  const SCRIPT =
    document.currentScript ||
    Array.from(document.querySelectorAll("script[src]")).find((s) => /\/widget\.js(\?|#|$)/.test(s.src)) ||
    null;
  const attr = (name) => {
    const value = SCRIPT && SCRIPT.getAttribute("data-kefu-" + name);
    return value == null || value.trim() === "" ? null : value.trim();
  };
  const SCRIPT_URL = new URL(SCRIPT && SCRIPT.src ? SCRIPT.src : "widget.js", location.href);
  // The API lives where widget.js was served from (also behind a path prefix such as /kefu/widget.js).
  const API = (attr("api") || new URL("./", SCRIPT_URL).href).replace(/\/+$/, "");
  const MODE = attr("mode") === "page" ? "page" : "corner";
  const TOKEN_URL = attr("token-url");
  const PAGE_PARAMS = new URLSearchParams(location.search);
  const LANG = pickLang(
    attr("lang") || (MODE === "page" && PAGE_PARAMS.get("lang")) || document.documentElement.lang || navigator.language,
  );
  // data-kefu-open: open at load — except on phones, where the open chat would cover the whole page.
  const PHONE = window.matchMedia && window.matchMedia("(max-width: 520px)").matches;
  const START_OPEN = MODE === "page" || (attr("open") === "true" && !PHONE);
  const STALL_MS = 45000; // no byte (not even a heartbeat) for this long: the connection is dead, reconnect
  const MAX_ATTEMPTS = 12; // reconnect attempts while online before giving up (the user can retry)
  const RETRYABLE_STATUS = [408, 409, 425, 429, 500, 502, 503, 504];

  function pickLang(value) {
    return /^zh/i.test(String(value || "")) ? "zh" : "en";
  }

  // ---------------------------------------------------------------- UI strings
  const STRINGS = {
    zh: {
      title: "在线客服",
      subtitle: "AI 助手 · 通常几秒内回复",
      open: "打开客服聊天",
      close: "收起客服聊天",
      dialog: "客服聊天",
      log: "对话记录",
      input: "输入消息",
      placeholder: "输入您的问题，回车发送",
      send: "发送",
      stop: "停止回答",
      retry: "重试",
      newChat: "新对话",
      newChatDone: "已开始新对话",
      greeting: "您好！我是客服助手，有什么可以帮您？",
      suggestions: "常见问题",
      didYouMean: "您是不是想问",
      you: "我说",
      bot: "客服说",
      typing: "客服正在输入…",
      answering: "客服正在回答",
      answered: "客服已回答",
      interrupted: "回答已中断",
      failedNote: "回答未完成",
      stopped: "已停止回答",
      reconnecting: "网络断开，正在重新连接…",
      reconnected: "已重新连接",
      errorCode: "错误代码",
      retryIn: "{s} 秒后可重试",
      err_network: "网络连接失败，请检查网络后重试。",
      err_connection: "与客服的连接中断了。",
      err_rate: "消息发送太频繁了，请稍后再试。",
      err_rate_wait: "消息发送太频繁了，请 {s} 秒后再试。",
      err_too_long: "消息太长了，请精简后再发送。",
      err_empty: "消息不能为空。",
      err_busy: "上一条回答还没结束，请稍候再发送。",
      err_not_configured: "客服机器人还没有配置好，暂时无法回答。",
      err_upstream: "客服暂时无法回答，请稍后重试。",
      err_timeout: "客服回答超时了，请重试。",
      err_lost: "服务器中断了这次回答，请重新提问。",
      err_auth: "无法确认您的身份，请刷新页面后重试。",
      err_setup: "客服组件没有配置好（缺少 data-kefu-token-url）。",
      err_no_answer: "这条消息没有得到回答。",
      err_generic: "出了点问题，请稍后重试。",
      powered: "由 kefu 提供",
      human: "转人工",
      queued: "排队中，前面还有 {n} 位",
      queuedWait: "排队中，请稍候",
      offline: "客服暂时不在线，您可以先留言，客服会尽快回复您",
      joined: "客服 {name} 已接入",
      agent: "客服",
      agentTyping: "{name} 正在输入…",
      backToBot: "已回到智能助手",
      ended: "本次服务已结束",
      rateAsk: "请为本次服务打分",
      star: "{n} 星",
      comment: "补充说明（选填）",
      rateSend: "提交评价",
      thanks: "感谢您的评价！",
      err_rated: "这次服务已经评价过了。",
      err_handoff: "暂时无法转接人工客服，请稍后再试。",
    },
    en: {
      title: "Customer service",
      subtitle: "AI assistant · usually replies in seconds",
      open: "Open customer service chat",
      close: "Minimise chat",
      dialog: "Customer service chat",
      log: "Conversation",
      input: "Message",
      placeholder: "Type your question, Enter to send",
      send: "Send",
      stop: "Stop answering",
      retry: "Retry",
      newChat: "New chat",
      newChatDone: "Started a new conversation",
      greeting: "Hello! I'm the shop assistant. How can I help?",
      suggestions: "Common questions",
      didYouMean: "Did you mean",
      you: "You said",
      bot: "Assistant said",
      typing: "The assistant is typing…",
      answering: "The assistant is answering",
      answered: "The assistant has answered",
      interrupted: "Answer interrupted",
      failedNote: "Answer incomplete",
      stopped: "Answer stopped",
      reconnecting: "Connection lost, reconnecting…",
      reconnected: "Reconnected",
      errorCode: "Error code",
      retryIn: "Retry in {s} s",
      err_network: "Could not reach the assistant. Check your connection and try again.",
      err_connection: "The connection to the assistant was lost.",
      err_rate: "You're sending messages too quickly. Please try again shortly.",
      err_rate_wait: "You're sending messages too quickly. Please try again in {s} seconds.",
      err_too_long: "That message is too long. Please shorten it.",
      err_empty: "The message is empty.",
      err_busy: "The previous answer isn't finished yet. Please wait a moment.",
      err_not_configured: "The assistant isn't set up yet and can't answer right now.",
      err_upstream: "The assistant can't answer right now. Please try again later.",
      err_timeout: "The assistant took too long to answer. Please try again.",
      err_lost: "The server stopped while answering. Please ask again.",
      err_auth: "We couldn't confirm who you are. Reload the page and try again.",
      err_setup: "The chat widget isn't configured (data-kefu-token-url is missing).",
      err_no_answer: "This message did not get an answer.",
      err_generic: "Something went wrong. Please try again.",
      powered: "Powered by kefu",
      human: "Talk to a person",
      queued: "In the queue: {n} ahead of you",
      queuedWait: "In the queue, please wait",
      offline: "No one is available right now. Leave a message and we'll reply as soon as we can",
      joined: "{name} has joined the chat",
      agent: "Agent",
      agentTyping: "{name} is typing…",
      backToBot: "You're back with the assistant",
      ended: "This conversation has ended",
      rateAsk: "How did we do?",
      star: "{n} of 5",
      comment: "Comment (optional)",
      rateSend: "Send rating",
      thanks: "Thank you for your feedback!",
      err_rated: "This conversation has already been rated.",
      err_handoff: "We can't reach a person right now. Please try again later.",
    },
  };
  const t = (key, vars) =>
    String(STRINGS[LANG][key] ?? STRINGS.en[key] ?? key).replace(/\{(\w+)\}/g, (_, k) => String(vars?.[k] ?? ""));

  // ---------------------------------------------------------------- storage (per kefu origin, per user)
  const memoryStore = new Map(); // used when localStorage is unavailable (privacy modes)
  const store = {
    get(key) {
      try {
        return window.localStorage.getItem(key);
      } catch {
        return memoryStore.has(key) ? memoryStore.get(key) : null;
      }
    },
    set(key, value) {
      try {
        window.localStorage.setItem(key, value);
      } catch {
        memoryStore.set(key, value);
      }
    },
    remove(key) {
      try {
        window.localStorage.removeItem(key);
      } catch {
        /* ignore */
      }
      memoryStore.delete(key);
    },
    getJSON(key) {
      try {
        return JSON.parse(this.get(key) || "null");
      } catch {
        return null;
      }
    },
  };
  const PREFIX = "kefu:" + API + ":";
  const userKey = (name) => PREFIX + (auth.sub || "anonymous") + ":" + name;

  // ---------------------------------------------------------------- tokens (never invented here)
  const auth = { token: null, sub: null, pending: null };

  function jwtClaims(token) {
    try {
      const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      const bytes = Uint8Array.from(atob(part), (c) => c.charCodeAt(0));
      return JSON.parse(new TextDecoder().decode(bytes)) || {};
    } catch {
      return {};
    }
  }

  function tokenUsable(token) {
    if (!token) return false;
    const exp = Number(jwtClaims(token).exp);
    return !exp || exp * 1000 - Date.now() > 30000;
  }

  class Failure extends Error {
    constructor(info) {
      super(info.message || info.code);
      this.info = info;
    }
  }

  async function getToken(force = false) {
    if (!force && tokenUsable(auth.token)) return auth.token;
    if (!auth.pending) auth.pending = fetchToken(force).finally(() => (auth.pending = null));
    return auth.pending;
  }

  async function fetchToken(force) {
    let token = null;
    if (TOKEN_URL) {
      // The host page's own backend signs a token for its logged-in shopper (cookies go along).
      let res;
      try {
        res = await fetch(new URL(TOKEN_URL, location.href).href, {
          method: "POST",
          credentials: "include",
          cache: "no-store",
          headers: { Accept: "application/json" },
        });
      } catch {
        throw new Failure({ code: "network", retryable: true });
      }
      if (!res.ok) throw new Failure({ code: "token", status: res.status, retryable: res.status >= 500 });
      const body = await res.json().catch(() => ({}));
      token = body.token || body.access_token || null;
    } else {
      // Demo mode: an anonymous visitor token from kefu itself, kept so a reload finds the conversation.
      const saved = force ? null : store.get(PREFIX + "visitor-token");
      if (tokenUsable(saved)) {
        token = saved;
      } else {
        let res;
        try {
          res = await fetch(API + "/v1/demo/token", { method: "POST", credentials: "omit", cache: "no-store" });
        } catch {
          throw new Failure({ code: "network", retryable: true });
        }
        if (res.status === 404) throw new Failure({ code: "setup", retryable: false });
        if (!res.ok) throw new Failure({ code: "token", status: res.status, retryable: res.status >= 500 });
        token = (await res.json().catch(() => ({}))).token || null;
        if (token) store.set(PREFIX + "visitor-token", token);
      }
    }
    if (typeof token !== "string" || !token) throw new Failure({ code: "token", retryable: false });
    const sub = String(jwtClaims(token).sub || "anonymous");
    const changed = auth.sub !== null && auth.sub !== sub;
    auth.token = token;
    auth.sub = sub;
    if (changed) chat.sessionId = store.get(userKey("session")); // a different user: their own conversation
    return token;
  }

  /** fetch() against the kefu API with the bearer token; one silent token refresh on 401. */
  async function api(path, init = {}) {
    for (let attempt = 0; ; attempt++) {
      const token = await getToken(attempt > 0);
      const headers = new Headers(init.headers || {});
      headers.set("Authorization", "Bearer " + token);
      let res;
      try {
        res = await fetch(API + path, { ...init, headers, credentials: "omit", cache: "no-store" });
      } catch (err) {
        if (err && err.name === "AbortError") throw err;
        throw new Failure({ code: "network", retryable: true });
      }
      if (res.status !== 401 || attempt > 0) return res;
    }
  }

  async function httpFailure(res) {
    const info = {
      code: "http_" + res.status,
      message: "",
      status: res.status,
      retryable: RETRYABLE_STATUS.includes(res.status),
      retryAfter: 0,
    };
    try {
      const body = await res.json();
      if (body && body.error) {
        info.code = String(body.error.code || info.code);
        info.message = String(body.error.message || "");
      }
    } catch {
      /* not JSON */
    }
    const after = Number(res.headers.get("Retry-After"));
    if (Number.isFinite(after) && after > 0) info.retryAfter = Math.ceil(after);
    return info;
  }

  /** An error in plain words for the shopper. */
  function describe(info) {
    const code = String(info.code || "");
    if (code === "rate_limited" || code === "upstream_rate_limited" || info.status === 429)
      return info.retryAfter ? t("err_rate_wait", { s: info.retryAfter }) : t("err_rate");
    if (code === "message_too_long" || info.status === 413) return t("err_too_long");
    if (code === "empty_message") return t("err_empty");
    if (code === "turn_in_progress" || info.status === 409) return t("err_busy");
    if (code === "llm_not_configured") return t("err_not_configured");
    if (code === "turn_lost" || code === "shutdown") return t("err_lost");
    if (code.includes("timeout")) return t("err_timeout");
    if (code.startsWith("upstream")) return t("err_upstream");
    if (code === "network") return t("err_network");
    if (code === "connection_lost") return t("err_connection");
    if (code === "setup") return t("err_setup");
    if (code === "token" || code === "unauthorized" || code.includes("token") || info.status === 401)
      return t("err_auth");
    if (code === "no_answer") return t("err_no_answer");
    return t("err_generic");
  }

  // ---------------------------------------------------------------- DOM helpers (no innerHTML anywhere)
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value == null || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "text") el.textContent = value;
      else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) if (child != null) el.append(child);
    return el;
  }

  const ICONS = {
    chat: "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2zm3 6.5a1.5 1.5 0 1 0 0 .01zm5 0a1.5 1.5 0 1 0 0 .01zm5 0a1.5 1.5 0 1 0 0 .01z",
    close: "M6.4 5 5 6.4 10.6 12 5 17.6 6.4 19l5.6-5.6 5.6 5.6 1.4-1.4-5.6-5.6L19 6.4 17.6 5 12 10.6z",
    send: "M3 20.5 21 12 3 3.5v6.6l12 1.9-12 1.9z",
    stop: "M7 7h10v10H7z",
    refresh:
      "M17.7 6.3A8 8 0 1 0 20 12h-2a6 6 0 1 1-1.8-4.2L13 11h7V4z",
    plus: "M11 5h2v6h6v2h-6v6h-2v-6H5v-2h6z",
    person: "M12 12a4 4 0 1 0 0-8 4 4 0 0 0 0 8zm0 2c-4 0-8 2-8 5v1h16v-1c0-3-4-5-8-5z",
  };
  function icon(name) {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    svg.setAttribute("class", "icon");
    const path = document.createElementNS(ns, "path");
    path.setAttribute("d", ICONS[name]);
    svg.append(path);
    return svg;
  }

  // ---------------------------------------------------------------- safe Markdown → DOM
  const SAFE_PROTOCOLS = ["http:", "https:", "mailto:"];

  function safeUrl(raw) {
    try {
      const url = new URL(raw); // absolute URLs only: no relative, no javascript:, no data:
      return SAFE_PROTOCOLS.includes(url.protocol) ? url.href : null;
    } catch {
      return null;
    }
  }

  function link(href, text) {
    return h("a", { href, target: "_blank", rel: "noopener noreferrer", text });
  }

  // One pass over inline syntax: `code`, **bold**, __bold__, *em*, _em_, [text](url), bare http(s) URLs.
  const INLINE =
    /`([^`\n]+)`|\*\*(?=\S)([\s\S]+?)\*\*|__(?=\S)([\s\S]+?)__|\*(?=[^\s*])([^*\n]+?)\*|(?<![\w])_(?=\S)([^_\n]+?)_(?![\w])|\[([^\]\n]+)\]\(\s*<?([^\s()<>]+(?:\([^\s()<>]*\))?)>?(?:\s+"[^"\n]*")?\s*\)|(https?:\/\/[^\s<>"'`\u3000-\u303f\uff00-\uffef]+)/g;

  function inline(text, parent) {
    let last = 0;
    const re = new RegExp(INLINE.source, "g"); // own instance: inline() recurses
    let m;
    while ((m = re.exec(text))) {
      if (m.index > last) parent.append(document.createTextNode(text.slice(last, m.index)));
      const [whole, code, bold1, bold2, em1, em2, linkText, linkUrl, bare] = m;
      if (code !== undefined) parent.append(h("code", { text: code }));
      else if (bold1 !== undefined || bold2 !== undefined) inline(bold1 ?? bold2, parent.appendChild(h("strong")));
      else if (em1 !== undefined || em2 !== undefined) inline(em1 ?? em2, parent.appendChild(h("em")));
      else if (linkText !== undefined) {
        const href = safeUrl(linkUrl);
        parent.append(href ? link(href, linkText) : document.createTextNode(whole));
      } else if (bare !== undefined) {
        // Trailing punctuation belongs to the sentence, not the URL.
        const url = bare.replace(/[.,;:!?)\]}'"]+$/, "");
        const href = safeUrl(url);
        parent.append(href ? link(href, url) : document.createTextNode(url));
        if (url.length < bare.length) parent.append(document.createTextNode(bare.slice(url.length)));
      }
      last = m.index + whole.length;
    }
    if (last < text.length) parent.append(document.createTextNode(text.slice(last)));
    return parent;
  }

  function inlineLines(lines, parent) {
    lines.forEach((line, i) => {
      if (i) parent.append(h("br"));
      inline(line, parent);
    });
    return parent;
  }

  /** Markdown subset → DocumentFragment: paragraphs, lists, headings, quotes, code, rules, inline marks. */
  function renderMarkdown(source) {
    const out = document.createDocumentFragment();
    const lines = String(source ?? "").replace(/\r\n?/g, "\n").split("\n");
    let para = [];
    let list = null; // {el, ordered}
    let quote = null;
    const flushPara = () => {
      if (para.length) out.append(inlineLines(para, h("p")));
      para = [];
    };
    const endBlocks = () => {
      flushPara();
      list = null;
      quote = null;
    };
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i];
      let m;
      if ((m = /^\s*(```|~~~)\s*([\w+-]*)\s*$/.exec(line))) {
        endBlocks();
        const fence = m[1];
        const body = [];
        for (i++; i < lines.length && !lines[i].trim().startsWith(fence); i++) body.push(lines[i]);
        out.append(h("pre", null, h("code", { text: body.join("\n") })));
        continue;
      }
      if (!line.trim()) {
        endBlocks();
        continue;
      }
      if ((m = /^\s{0,3}(#{1,6})\s+(.+?)\s*#*\s*$/.exec(line))) {
        endBlocks();
        out.append(inline(m[2], h("p", { class: "md-h" }, null)));
        continue;
      }
      if (/^\s{0,3}([-*_])(\s*\1){2,}\s*$/.test(line)) {
        endBlocks();
        out.append(h("hr"));
        continue;
      }
      if ((m = /^\s*>\s?(.*)$/.exec(line))) {
        flushPara();
        list = null;
        if (!quote) out.append((quote = h("blockquote")));
        if (quote.childNodes.length) quote.append(h("br"));
        inline(m[1], quote);
        continue;
      }
      const bullet = /^\s*[-*+•]\s+(.*)$/.exec(line);
      const numbered = /^\s*(\d{1,3})(?:[.)]\s+|[、．]\s*)(.*)$/.exec(line);
      if (bullet || numbered) {
        flushPara();
        quote = null;
        const ordered = !!numbered;
        if (!list || list.ordered !== ordered) {
          list = { ordered, el: h(ordered ? "ol" : "ul") };
          if (ordered && numbered[1] !== "1") list.el.setAttribute("start", String(Number(numbered[1])));
          out.append(list.el);
        }
        list.el.append(inline(ordered ? numbered[2] : bullet[1], h("li")));
        continue;
      }
      if (list && /^\s{2,}\S/.test(line)) {
        // continuation of the previous list item
        const li = list.el.lastElementChild;
        li.append(h("br"));
        inline(line.trim(), li);
        continue;
      }
      list = null;
      quote = null;
      para.push(line);
    }
    flushPara();
    return out;
  }

  // ---------------------------------------------------------------- SSE parsing (fetch + ReadableStream)
  class SSEParser {
    constructor(onEvent) {
      this.onEvent = onEvent;
      this.buffer = "";
      this.reset();
    }
    reset() {
      this.event = "";
      this.data = [];
      this.id = null;
    }
    push(text) {
      this.buffer += text;
      const re = /\r\n|\r|\n/g;
      let start = 0;
      let m;
      while ((m = re.exec(this.buffer))) {
        if (m[0] === "\r" && m.index === this.buffer.length - 1) break; // maybe half of a \r\n
        this.line(this.buffer.slice(start, m.index));
        start = re.lastIndex;
      }
      this.buffer = this.buffer.slice(start);
    }
    line(line) {
      if (line === "") {
        if (this.data.length) this.onEvent({ event: this.event || "message", data: this.data.join("\n"), id: this.id });
        this.reset();
        return;
      }
      if (line[0] === ":") return; // comment (heartbeat)
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value[0] === " ") value = value.slice(1);
      if (field === "event") this.event = value;
      else if (field === "data") this.data.push(value);
      else if (field === "id") this.id = value;
    }
  }

  function seqOf(id) {
    const seq = Number(String(id || "").split(":").pop());
    return Number.isInteger(seq) && seq > 0 ? seq : null;
  }

  // ---------------------------------------------------------------- the widget's DOM
  const reducedMotion = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  const uid = Math.random().toString(36).slice(2, 8);
  const ui = {};

  function buildUI() {
    const host = h("div", { id: "kefu-widget", "data-kefu-mode": MODE, lang: LANG === "zh" ? "zh-CN" : "en" });
    const color = attr("color");
    if (color && window.CSS && CSS.supports("color", color)) host.style.setProperty("--kefu-accent", color);
    const root = host.attachShadow({ mode: "open" });
    const css = h("link", { rel: "stylesheet", href: API + "/widget.css?v=" + VERSION });
    const title = attr("title") || t("title");

    ui.host = host;
    ui.root = root;
    ui.status = h("div", { class: "sr-only", role: "status", "aria-live": "polite" });
    ui.log = h("div", {
      class: "log",
      id: "kefu-log-" + uid,
      role: "log",
      "aria-live": "polite",
      "aria-label": t("log"),
      tabindex: "0",
    });
    ui.input = h("textarea", {
      class: "input",
      id: "kefu-input-" + uid,
      rows: "1",
      placeholder: t("placeholder"),
      "aria-label": t("input"),
      autocomplete: "off",
      enterkeyhint: "send",
      maxlength: attr("max-chars") || "4000",
    });
    ui.send = h("button", { type: "submit", class: "send", title: t("send"), "aria-label": t("send") }, icon("send"));
    ui.stop = h(
      "button",
      { type: "button", class: "stop", title: t("stop"), "aria-label": t("stop"), hidden: true, onclick: () => stop() },
      icon("stop"),
    );
    ui.form = h("form", { class: "composer", onsubmit: onSubmit }, ui.input, ui.send, ui.stop);
    ui.human = h(
      "button",
      { type: "button", class: "ghost human", title: t("human"), "aria-label": t("human"), onclick: () => requestHuman() },
      icon("person"),
    );
    ui.bar = h("p", { class: "hbar", role: "status", hidden: true });
    ui.typing = h("p", { class: "agent-typing", "aria-live": "polite", hidden: true });
    ui.newChat = h(
      "button",
      { type: "button", class: "ghost new-chat", title: t("newChat"), "aria-label": t("newChat"), onclick: newChat },
      icon("plus"),
    );
    ui.close =
      MODE === "corner"
        ? h(
            "button",
            { type: "button", class: "ghost close", title: t("close"), "aria-label": t("close"), onclick: () => setOpen(false) },
            icon("close"),
          )
        : null;
    const titleId = "kefu-title-" + uid;
    ui.panel = h(
      "section",
      { class: "panel", role: "dialog", "aria-labelledby": titleId, id: "kefu-panel-" + uid, hidden: true },
      h(
        "header",
        { class: "head" },
        h("div", { class: "avatar", "aria-hidden": "true" }, icon("chat")),
        h("div", { class: "titles" }, h("h2", { id: titleId, text: title }), h("p", { text: attr("subtitle") || t("subtitle") })),
        ui.human,
        ui.newChat,
        ui.close,
      ),
      ui.bar,
      ui.log,
      ui.typing,
      ui.form,
      h("p", { class: "powered", text: t("powered") }),
      ui.status,
    );
    ui.launcher =
      MODE === "corner"
        ? h(
            "button",
            {
              type: "button",
              class: "launcher",
              "aria-label": t("open"),
              "aria-controls": ui.panel.id,
              "aria-expanded": "false",
              onclick: () => setOpen(!chat.open),
            },
            icon("chat"),
          )
        : null;
    ui.panel.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && MODE === "corner") {
        e.preventDefault();
        setOpen(false);
      }
    });
    ui.input.addEventListener("keydown", onInputKey);
    ui.input.addEventListener("input", autosize);
    // Show nothing until the stylesheet is in, so the page never flashes unstyled widget parts.
    host.setAttribute("data-loading", "");
    css.addEventListener("load", () => host.removeAttribute("data-loading"));
    css.addEventListener("error", () => host.removeAttribute("data-loading"));
    root.append(css, ui.panel);
    if (ui.launcher) root.append(ui.launcher);
    (document.body || document.documentElement).append(host);
  }

  function autosize() {
    ui.input.style.height = "auto";
    ui.input.style.height = Math.min(ui.input.scrollHeight, 120) + "px";
  }

  function onInputKey(e) {
    // Enter sends; Shift+Enter is a new line; never send while an IME is composing (Chinese input).
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      onSubmit(e);
    }
  }

  function onSubmit(e) {
    e.preventDefault();
    if (chat.busy) return;
    const text = ui.input.value;
    if (!text.trim()) return;
    ui.input.value = "";
    autosize();
    send(text);
  }

  function announce(text) {
    ui.status.textContent = "";
    // A fresh text node so screen readers announce repeated messages too.
    setTimeout(() => (ui.status.textContent = text), 50);
  }

  function nearBottom() {
    return ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < 80;
  }
  function scrollDown(force = false) {
    if (force || nearBottom()) ui.log.scrollTop = ui.log.scrollHeight;
  }

  function setOpen(open, focus = true) {
    chat.open = open;
    ui.panel.hidden = !open;
    ui.host.toggleAttribute("data-open", open);
    if (ui.launcher) {
      ui.launcher.setAttribute("aria-expanded", String(open));
      ui.launcher.setAttribute("aria-label", open ? t("close") : t("open"));
      ui.launcher.replaceChildren(icon(open ? "close" : "chat"));
    }
    if (MODE === "corner") store.set(PREFIX + "open", open ? "1" : "0");
    if (open) {
      boot();
      scrollDown(true);
      if (focus && !chat.busy) ui.input.focus({ preventScroll: true });
    } else if (ui.launcher && ui.root.activeElement) {
      ui.launcher.focus();
    }
  }

  function setBusy(busy) {
    chat.busy = busy;
    const hadFocus = ui.root.activeElement === ui.input || ui.root.activeElement === ui.send;
    const stopFocused = ui.root.activeElement === ui.stop;
    ui.input.disabled = busy;
    ui.send.disabled = busy;
    ui.send.hidden = busy;
    ui.stop.hidden = !busy;
    ui.stop.removeAttribute("aria-disabled");
    ui.newChat.disabled = busy;
    syncHuman();
    ui.log.setAttribute("aria-busy", String(busy));
    ui.host.toggleAttribute("data-busy", busy);
    if (busy && hadFocus) ui.stop.focus();
    if (!busy && (stopFocused || hadFocus)) ui.input.focus();
  }

  // ---------------------------------------------------------------- messages
  function clearLog() {
    ui.log.replaceChildren();
    seen.clear();
  }

  function addUser(text, turnId) {
    const el = h(
      "div",
      { class: "msg user", "data-turn-id": turnId || null },
      h("span", { class: "sr-only", text: t("you") + "：" }),
      h("div", { class: "bubble", text }),
    );
    ui.log.append(el);
    scrollDown(true);
    return el;
  }

  /** An assistant bubble that reveals text smoothly however coarse the network frames are. */
  class AnswerView {
    constructor({ text = "", state = "streaming", turnId = null } = {}) {
      this.content = h("div", { class: "content" });
      this.extra = h("div", { class: "extra" });
      this.bubble = h("div", { class: "bubble" }, this.content, this.extra);
      this.el = h(
        "div",
        { class: "msg assistant", "data-state": state, "data-turn-id": turnId },
        h("span", { class: "sr-only", text: t("bot") + "：" }),
        this.bubble,
      );
      this.target = "";
      this.shown = 0;
      this.frame = 0;
      this.drained = [];
      ui.log.append(this.el);
      if (state === "streaming") {
        this.el.setAttribute("aria-busy", "true");
        this.typing = h(
          "span",
          { class: "dots", role: "img", "aria-label": t("typing") },
          h("i"),
          h("i"),
          h("i"),
        );
        this.content.append(this.typing);
      }
      if (text) this.set(text, false);
      scrollDown(true);
    }
    set turnId(id) {
      if (id) this.el.setAttribute("data-turn-id", id);
    }
    /** The full text received so far; shown progressively unless ``animate`` is false. */
    set(text, animate = true) {
      this.target = text;
      if (!animate || reducedMotion || document.hidden) {
        this.shown = text.length;
        this.paint();
        this.settle();
      } else if (!this.frame) {
        this.frame = requestAnimationFrame(() => this.step());
      }
    }
    step() {
      this.frame = 0;
      const backlog = this.target.length - this.shown;
      if (backlog > 0) {
        // Reveal faster when far behind: the backlog drains in ~12 frames, but at least 1 char per frame.
        let end = this.shown + Math.max(1, Math.ceil(backlog / 12));
        const c = this.target.charCodeAt(end - 1);
        if (c >= 0xd800 && c <= 0xdbff) end++; // never split a surrogate pair (emoji)
        this.shown = Math.min(end, this.target.length);
        this.paint();
      }
      if (this.shown < this.target.length) this.frame = requestAnimationFrame(() => this.step());
      else this.settle();
    }
    paint() {
      const stick = nearBottom();
      this.content.replaceChildren(renderMarkdown(this.target.slice(0, this.shown)));
      this.el.setAttribute("data-shown", String(this.shown));
      if (stick) scrollDown(true);
    }
    settle() {
      if (this.shown < this.target.length) return;
      const callbacks = this.drained;
      this.drained = [];
      callbacks.forEach((fn) => fn());
    }
    /** Run ``fn`` once every received character is on screen. */
    whenShown(fn) {
      this.drained.push(fn);
      if (document.hidden || reducedMotion) this.set(this.target, false);
      else if (!this.frame) this.settle();
    }
    flush() {
      if (this.frame) cancelAnimationFrame(this.frame);
      this.frame = 0;
      this.set(this.target, false);
    }
    finish(state) {
      this.el.setAttribute("data-state", state);
      this.el.removeAttribute("aria-busy");
      if (this.typing && !this.target) this.content.replaceChildren();
      this.extra.replaceChildren();
      if (state === "interrupted" || state === "failed") {
        this.extra.append(h("p", { class: "note", text: t(state === "failed" ? "failedNote" : "interrupted") }));
      }
    }
    /** "Did you mean" questions as buttons (tapping one asks it) instead of the answer's "- question" lines. */
    suggest(questions) {
      const listed = new Set(questions.map((q) => "- " + q.trim()));
      this.target = this.target
        .split("\n")
        .filter((line) => !listed.has(line.trim()))
        .join("\n")
        .trimEnd();
      this.flush();
      const group = h("div", { class: "suggest", role: "group", "aria-label": t("didYouMean") });
      for (const text of questions) {
        group.append(h("button", { type: "button", class: "chip", text, onclick: () => send(text) }));
      }
      this.extra.append(group);
    }
    reconnecting(on) {
      this.el.toggleAttribute("data-reconnecting", on);
      const note = this.extra.querySelector(".reconnecting");
      if (on && !note) this.extra.append(h("p", { class: "reconnecting", text: t("reconnecting") }));
      if (!on && note) note.remove();
    }
    error(info, retry) {
      this.finish("error");
      if (this.target) this.extra.append(h("p", { class: "note", text: t("interrupted") }));
      const box = h(
        "div",
        { class: "error", role: "alert" },
        h("p", { class: "error-text", text: describe(info) }),
      );
      if (info.code && !["network", "connection_lost", "no_answer"].includes(info.code))
        box.append(h("p", { class: "error-code", text: t("errorCode") + ": " + info.code }));
      if (retry) {
        const button = h("button", { type: "button", class: "retry" }, icon("refresh"), t("retry"));
        button.addEventListener("click", () => {
          button.disabled = true;
          retry();
        });
        box.append(button);
      }
      this.extra.append(box);
      const wait = Number(info.retryAfter) || 0;
      const button = box.querySelector(".retry");
      if (button && wait > 0) countdown(button, wait);
      scrollDown();
    }
  }

  function countdown(button, seconds) {
    button.disabled = true;
    const label = button.lastChild;
    const original = label.textContent;
    let left = seconds;
    const tick = () => {
      if (!button.isConnected) return;
      if (left <= 0) {
        label.textContent = original;
        button.disabled = false;
        return;
      }
      label.textContent = t("retryIn", { s: left });
      left -= 1;
      setTimeout(tick, 1000);
    };
    tick();
  }

  function showGreeting() {
    const greeting = h("div", { class: "msg assistant greeting", "data-state": "greeting" });
    greeting.append(h("div", { class: "bubble" }, h("div", { class: "content" }, renderMarkdown(attr("greeting") || t("greeting")))));
    ui.log.append(greeting);
    const suggestions = (attr("suggestions") || "")
      .split("|")
      .map((s) => s.trim())
      .filter(Boolean)
      .slice(0, 6);
    if (suggestions.length) {
      const chips = h("div", { class: "chips", role: "group", "aria-label": t("suggestions") });
      for (const text of suggestions) {
        chips.append(h("button", { type: "button", class: "chip", text, onclick: () => send(text) }));
      }
      ui.log.append(chips);
    }
  }

  // ---------------------------------------------------------------- conversation state
  const chat = {
    open: false,
    booted: null,
    busy: false,
    sessionId: null,
    turn: null, // the running turn
  };
  // Who owns the conversation (docs/handoff.md): bot, queued, agent or closed.
  const OPEN = ["queued", "agent"];
  const hand = { state: "bot", id: null, since: null, agent: null, offline: false, end: null, typing: 0 };
  const seen = new Set(); // ids of people's messages on screen
  // The conversation feed: its session, the handoff it follows, the last seq read, whether that handoff's start
  // was read (events before it belong to earlier handoffs), and the live run and connection.
  const feed = { sid: null, hid: null, seq: 0, armed: false, live: null, conn: null, linger: 0 };

  function setSession(id) {
    if (id !== chat.sessionId) resetHand();
    chat.sessionId = id;
    if (id) store.set(userKey("session"), id);
    else store.remove(userKey("session"));
  }

  /** The running turn, saved on every event so a reload can resume it (text + last event id together). */
  function saveRunning(turn) {
    if (!turn.turnId) return;
    store.set(
      userKey("turn"),
      JSON.stringify({
        turnId: turn.turnId,
        sessionId: chat.sessionId,
        seq: turn.seq,
        text: turn.text,
        question: turn.question,
      }),
    );
  }
  function clearRunning(turn) {
    const saved = store.getJSON(userKey("turn"));
    if (!saved || !turn || saved.turnId === turn.turnId || !turn.turnId) store.remove(userKey("turn"));
  }

  function newTurn(question, userEl, saved) {
    const turn = {
      question,
      userEl,
      turnId: saved ? saved.turnId : null,
      seq: saved ? saved.seq : 0,
      text: saved ? saved.text || "" : "",
      finished: false,
      stopRequested: false,
      cancelSent: false,
      controller: null,
    };
    turn.view = new AnswerView({ text: turn.text, turnId: turn.turnId });
    chat.turn = turn;
    setBusy(true);
    announce(t("answering"));
    return turn;
  }

  /** A fresh AbortController for the next connection of ``turn`` (aborted on stall, offline or stop). */
  function connection(turn) {
    if (turn.controller) turn.controller.abort();
    turn.controller = new AbortController();
    return turn.controller;
  }

  async function send(text) {
    const question = String(text).trim();
    if (!question || chat.busy) return;
    if (!chat.open) setOpen(true);
    await boot();
    if (chat.busy) return;
    ui.log.querySelectorAll(".chips").forEach((el) => el.remove());
    const userEl = addUser(question);
    const turn = newTurn(question, userEl);
    for (let attempt = 0; attempt < 2; attempt++) {
      let res;
      try {
        res = await api("/v1/chat", {
          method: "POST",
          headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
          body: JSON.stringify({ message: question, session_id: chat.sessionId }),
          signal: connection(turn).signal,
        });
      } catch (err) {
        const info = err instanceof Failure ? err.info : { code: "network", retryable: true };
        return fail(turn, info, info.retryable ? "resend" : null);
      }
      if (res.status === 404 && chat.sessionId && attempt === 0) {
        setSession(null); // the conversation is gone (deleted, expired, or another user's): start a new one
        continue;
      }
      if (!res.ok) {
        const info = await httpFailure(res);
        if (res.status === 413 || res.status === 422) ui.input.value = question; // let the shopper edit it
        return fail(turn, info, info.retryable ? "resend" : null);
      }
      return follow(turn, res);
    }
  }

  /** Read a turn's events until done/error; on a drop, resume after the last event id with backoff. */
  async function follow(turn, res) {
    let failures = 0;
    for (;;) {
      if (res) {
        let result = { terminal: false, events: 0 };
        try {
          result = await readStream(res, turn.controller, (event) => handleEvent(turn, event));
        } catch {
          /* dropped mid-stream: resume below */
        }
        res = null;
        if (result.terminal || turn.finished) return;
        if (result.events > 0) failures = 0;
      }
      if (turn.finished || chat.turn !== turn) return;
      if (!turn.turnId) return fail(turn, { code: "network", retryable: true }, "resend");
      const offline = navigator.onLine === false;
      if (failures > 0 || offline) turn.view.reconnecting(true);
      // Offline, keep waiting (the "online" event wakes us); online, give up after a while (retry stays possible).
      if (failures >= MAX_ATTEMPTS && !offline) return fail(turn, { code: "connection_lost", retryable: true }, "resume");
      await backoff(offline ? Math.max(failures, 3) : failures);
      if (turn.finished || chat.turn !== turn) return;
      try {
        const r = await api("/v1/chat/turns/" + encodeURIComponent(turn.turnId) + "/events", {
          headers: { "Last-Event-ID": turn.turnId + ":" + turn.seq, Accept: "text/event-stream" },
          signal: connection(turn).signal,
        });
        if (r.status === 204 || r.status === 404) {
          // 204: the turn finished and nothing is left to read; 404: its log expired. The history has it.
          return settleFromHistory(turn);
        }
        if (r.ok) {
          if (turn.view.el.hasAttribute("data-reconnecting")) announce(t("reconnected"));
          turn.view.reconnecting(false);
          res = r;
          if (turn.stopRequested && !turn.cancelSent) cancelTurn(turn);
          continue;
        }
        if (!RETRYABLE_STATUS.includes(r.status)) return fail(turn, await httpFailure(r), null);
        if (r.status === 429) await sleep(((await httpFailure(r)).retryAfter || 1) * 1000);
      } catch (err) {
        if (err instanceof Failure && !err.info.retryable) return fail(turn, err.info, null);
        /* network: try again */
      }
      failures++;
    }
  }

  function sleep(ms) {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        window.removeEventListener("online", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      window.addEventListener("online", done); // back online: try at once
    });
  }

  function backoff(attempt) {
    if (attempt === 0) return Promise.resolve();
    const base = Math.min(10000, 400 * 2 ** (attempt - 1));
    return sleep(base * (0.75 + Math.random() * 0.5));
  }

  /** Read SSE events from ``res`` until ``onEvent`` returns true or the stream ends; ``controller`` aborts a stall. */
  async function readStream(res, controller, onEvent) {
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    const result = { terminal: false, events: 0 };
    const parser = new SSEParser((event) => {
      if (result.terminal) return;
      result.events++;
      result.terminal = onEvent(event);
    });
    let stall = null;
    const arm = () => {
      clearTimeout(stall);
      stall = setTimeout(() => controller && controller.abort(), STALL_MS);
    };
    try {
      arm();
      while (!result.terminal) {
        const { value, done } = await reader.read();
        if (done) break;
        arm();
        parser.push(decoder.decode(value, { stream: true }));
      }
    } finally {
      clearTimeout(stall);
      reader.cancel().catch(() => {});
    }
    return result;
  }

  /** Apply one event; true when it ends the turn. Events at or before the last seen id are skipped. */
  function handleEvent(turn, event) {
    const seq = seqOf(event.id);
    if (seq !== null && seq <= turn.seq) return false; // already have it (a replay overlap)
    let data;
    try {
      data = JSON.parse(event.data);
    } catch {
      return false;
    }
    if (seq !== null) turn.seq = seq;
    switch (event.event) {
      case "session":
        turn.turnId = data.turn_id;
        turn.view.turnId = data.turn_id;
        turn.userEl.setAttribute("data-turn-id", data.turn_id);
        setSession(data.session_id);
        saveRunning(turn);
        if (turn.stopRequested && !turn.cancelSent) cancelTurn(turn);
        return false;
      case "delta":
        turn.text += String(data.text ?? "");
        saveRunning(turn);
        turn.view.set(turn.text);
        return false;
      case "handoff":
        saveRunning(turn);
        applyHandoff(data);
        return false;
      case "done":
        finishTurn(turn, "complete", data);
        return true;
      case "error":
        if (data.code === "cancelled") finishTurn(turn, "interrupted");
        else fail(turn, { code: data.code, message: data.message, retryable: !!data.retryable }, data.retryable ? "resend" : null);
        return true;
      default:
        saveRunning(turn);
        return false;
    }
  }

  function endTurn(turn) {
    turn.finished = true;
    if (turn.controller) turn.controller.abort();
    clearRunning(turn);
  }

  function finishTurn(turn, state, done) {
    endTurn(turn);
    turn.view.reconnecting(false);
    const handoff = done && done.handoff;
    if (handoff && handoff.state && handoff.state !== hand.state) applyHandoff(handoff);
    turn.view.whenShown(() => {
      turn.view.finish(state);
      // Relayed to a person: the bot says nothing, so there is no bubble to show.
      if (done && done.source === "human" && !turn.text) turn.view.el.remove();
      else if (done && done.handoff_offered) {
        turn.view.extra.append(offerButton());
        scrollDown();
      }
      if (done && Array.isArray(done.suggestions) && done.suggestions.length) {
        turn.view.suggest(done.suggestions.map(String));
        scrollDown();
      }
      if (chat.turn === turn) {
        chat.turn = null;
        setBusy(false);
      }
      announce(state === "complete" ? t("answered") : t("stopped"));
    });
  }

  /** Show an error in the turn's bubble; ``retry`` is "resend" (ask again), "resume" (reconnect) or null. */
  function fail(turn, info, retry) {
    endTurn(turn);
    if (retry !== "resume") turn.view.reconnecting(false);
    let again = null;
    if (retry === "resend") {
      again = () => {
        turn.view.el.remove();
        turn.userEl.remove();
        send(turn.question);
      };
    } else if (retry === "resume") {
      turn.finished = false;
      saveRunning(turn);
      again = () => {
        turn.view.extra.replaceChildren();
        turn.view.el.setAttribute("data-state", "streaming");
        chat.turn = turn;
        setBusy(true);
        follow(turn, null);
      };
    }
    turn.view.whenShown(() => {
      turn.view.error(info, again);
      if (chat.turn === turn) {
        chat.turn = null;
        setBusy(false);
      }
      announce(describe(info));
    });
  }

  async function cancelTurn(turn) {
    turn.cancelSent = true;
    try {
      const res = await api("/v1/chat/turns/" + encodeURIComponent(turn.turnId) + "/cancel", { method: "POST" });
      if (!res.ok && res.status !== 404) turn.cancelSent = false;
    } catch {
      turn.cancelSent = false; // offline: sent again when the stream reconnects
    }
  }

  function stop() {
    const turn = chat.turn;
    if (!turn || turn.finished || turn.stopRequested) return;
    turn.stopRequested = true;
    ui.stop.setAttribute("aria-disabled", "true"); // not `disabled`: that would drop keyboard focus
    if (turn.turnId) cancelTurn(turn); // else sent as soon as the session event names the turn
  }

  /** The turn ended while we were away: show what the server stored. */
  async function settleFromHistory(turn) {
    endTurn(turn);
    const messages = await loadHistory();
    if (chat.turn === turn) chat.turn = null;
    setBusy(false);
    if (!messages) {
      // The history could not be read either: keep what is on screen and offer to try again.
      turn.view.whenShown(() =>
        turn.view.error({ code: "network", retryable: true }, () => {
          turn.view.el.remove();
          loadHistory();
        }),
      );
      return;
    }
    const stored = messages.find((m) => m.role === "assistant" && m.turn_id === turn.turnId);
    if (!stored) {
      const view = new AnswerView({ state: "error" });
      view.error({ code: "no_answer" }, () => {
        view.el.remove();
        send(turn.question);
      });
    } else if (stored) {
      announce(t("answered"));
    }
  }

  /** Render the conversation from GET /v1/sessions/{id}; returns its messages (null if unavailable). */
  async function loadHistory() {
    if (!chat.sessionId) {
      clearLog();
      showGreeting();
      return [];
    }
    let res;
    try {
      const found = handoffNow(chat.sessionId);
      res = await api("/v1/sessions/" + encodeURIComponent(chat.sessionId));
      const now = await found;
      if (now && now.handoff && now.handoff.id === hand.id) hand.since = now.handoff.created_at;
    } catch {
      return null;
    }
    if (res.status === 404) {
      setSession(null);
      store.remove(userKey("turn"));
      clearLog();
      showGreeting();
      return [];
    }
    if (!res.ok) return null;
    const body = await res.json();
    const messages = Array.isArray(body.messages) ? body.messages : [];
    renderHistory(messages);
    return messages;
  }

  function renderHistory(messages, runningTurnId = null, since = hand.state === "bot" ? null : hand.since) {
    clearLog();
    if (!messages.length) showGreeting();
    const answered = new Set(messages.filter((m) => m.role === "assistant").map((m) => m.turn_id));
    // Messages a person owned were relayed to them: no bot answer, and that is no error. They follow a person's
    // words (or the start of the handoff that is still open or waits for a rating), until the bot answers again.
    let human = false;
    for (const m of messages) {
      if (m.role === "agent" || m.source === "human" || Date.parse(m.created_at) >= Date.parse(since || "")) human = true;
      else if (m.role === "assistant") human = false;
      if (m.role === "agent") addAgent(String(m.content ?? ""), m.author, m.turn_id);
      if (m.role === "user") {
        addUser(String(m.content ?? ""), m.turn_id);
        if (human) answered.add(m.turn_id);
        if (m.turn_id && !answered.has(m.turn_id) && m.turn_id !== runningTurnId && m !== messages.at(-1)) {
          new AnswerView({ state: "error", turnId: m.turn_id }).error({ code: "no_answer" }, null);
        }
      } else if (m.role === "assistant") {
        const state = m.status === "complete" ? "complete" : m.status === "failed" ? "failed" : "interrupted";
        new AnswerView({ text: String(m.content ?? ""), state, turnId: m.turn_id }).finish(state);
      }
    }
    scrollDown(true);
  }

  /** Once: get a token, show the conversation, and resume a turn that was running before a reload. */
  function boot() {
    if (!chat.booted) {
      chat.booted = start().catch((err) => {
        chat.booted = null; // let the next open try again
        const info = err instanceof Failure ? err.info : { code: "generic" };
        clearLog();
        const view = new AnswerView({ state: "error" });
        view.error(info, info.retryable || info.code === "network" ? () => { clearLog(); boot(); } : null);
      });
    }
    return chat.booted;
  }

  async function start() {
    await getToken();
    chat.sessionId = store.get(userKey("session"));
    const saved = store.getJSON(userKey("turn"));
    if (!chat.sessionId) {
      clearLog();
      showGreeting();
      return;
    }
    const [res, found] = await Promise.all([
      api("/v1/sessions/" + encodeURIComponent(chat.sessionId)),
      handoffNow(chat.sessionId),
    ]);
    if (res.status === 404) {
      setSession(null);
      store.remove(userKey("turn"));
      clearLog();
      showGreeting();
      return;
    }
    if (!res.ok) throw new Failure(await httpFailure(res));
    const messages = (await res.json()).messages || [];
    const running =
      saved &&
      saved.turnId &&
      saved.sessionId === chat.sessionId &&
      !messages.some((m) => m.role === "assistant" && m.turn_id === saved.turnId);
    const now = found && found.handoff ? { ...found.handoff, state: found.state } : null;
    renderHistory(messages, running ? saved.turnId : null, now && now.state !== "bot" ? now.created_at : null);
    if (now) applyHandoff(now);
    if (!running) {
      store.remove(userKey("turn"));
      return;
    }
    // A turn was still running when the page went away: pick it up after the last event we had.
    let userEl = ui.log.querySelector('.msg.user[data-turn-id="' + CSS.escape(saved.turnId) + '"]');
    if (!userEl) userEl = addUser(String(saved.question || ""), saved.turnId);
    const turn = newTurn(String(saved.question || ""), userEl, saved);
    follow(turn, null);
  }

  function newChat() {
    if (chat.busy) return;
    setSession(null);
    resetHand();
    store.remove(userKey("turn"));
    clearLog();
    showGreeting();
    announce(t("newChatDone"));
    ui.input.focus();
  }

  // The connection is surely gone when the browser goes offline: drop it now and resume when back.
  window.addEventListener("offline", () => {
    const turn = chat.turn;
    if (turn && !turn.finished && turn.turnId && turn.controller) turn.controller.abort();
    if (feed.conn) feed.conn.abort();
  });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && chat.turn) chat.turn.view.flush();
  });

  // ---------------------------------------------------------------- people in the loop (docs/handoff.md)
  const HUMAN_TEXT = "转人工"; // what the shopper would type; the bot's human flow knows it

  function addSystem(text, cls = "") {
    const el = h("p", { class: ("sys " + cls).trim(), text });
    ui.log.append(el);
    scrollDown();
    return el;
  }

  /** A person's message: a bubble of its own, labelled with their name; each message id shows once. */
  function addAgent(text, name, id) {
    if (id && seen.has(id)) return;
    if (id) seen.add(id);
    ui.log.append(
      h(
        "div",
        { class: "msg agent", "data-id": id || null },
        h("span", { class: "who", text: String(name || t("agent")) }),
        h("div", { class: "bubble" }, h("div", { class: "content" }, renderMarkdown(text))),
      ),
    );
    scrollDown(true);
  }

  function setBar(text) {
    ui.bar.hidden = !text;
    ui.bar.textContent = text || "";
    ui.bar.setAttribute("data-state", hand.state);
  }

  function typing(name) {
    clearTimeout(hand.typing);
    ui.typing.hidden = !name;
    ui.typing.textContent = name ? t("agentTyping", { name }) : "";
    if (name) hand.typing = setTimeout(() => typing(null), 6000);
  }

  function syncHuman() {
    ui.human.disabled = chat.busy || OPEN.includes(hand.state);
  }

  function resetHand() {
    stopFeed();
    Object.assign(hand, { state: "bot", id: null, since: null, agent: null, offline: false, end: null });
    setBar(null);
    typing(null);
    syncHuman();
  }

  function offerButton() {
    return h("button", { type: "button", class: "offer", onclick: () => requestHuman() }, icon("person"), t("human"));
  }

  /** Who answers now, from a turn's or the feed's ``handoff`` event or GET …/handoff: status line, feed, rating. */
  function applyHandoff(d) {
    if (!d || !d.state) return;
    const was = hand.state;
    const same = d.id === hand.id;
    if (!same) hand.agent = null;
    hand.state = d.state;
    if (d.id) hand.id = d.id;
    if (d.created_at) hand.since = d.created_at;
    if (OPEN.includes(d.state)) {
      if (d.agent && d.agent.name) hand.agent = String(d.agent.name);
      // A relayed message's event does not know whether anyone is online: keep what the request said.
      hand.offline = d.state === "queued" && (!!d.offline || (same && was === "queued" && hand.offline));
      setBar(
        d.state === "agent"
          ? t("joined", { name: hand.agent || t("agent") })
          : hand.offline
            ? t("offline")
            : d.position == null
              ? t("queuedWait")
              : t("queued", { n: d.position }),
      );
      ui.log.querySelectorAll(".offer").forEach((el) => el.remove());
      hand.end = null;
      startFeed();
    } else {
      setBar(null);
      typing(null);
      stopFeed(1500); // the notice that goes with the change follows it in the feed
      if (d.state !== was && (OPEN.includes(was) || (d.state === "closed" && d.rating == null))) {
        hand.end = addSystem(t(d.state === "closed" ? "ended" : "backToBot"));
        if (d.state === "closed" && d.rating == null) showRating();
      }
    }
    syncHuman();
  }

  async function handoffNow(sessionId) {
    try {
      const res = await api("/v1/sessions/" + encodeURIComponent(sessionId) + "/handoff");
      return res.ok ? await res.json() : null;
    } catch {
      return null;
    }
  }

  /** The "talk to a person" control: POST …/handoff, or (no conversation yet) say so as a message. */
  async function requestHuman() {
    if (chat.busy) return;
    if (!chat.open) setOpen(true);
    await boot();
    if (chat.busy || OPEN.includes(hand.state)) return;
    if (!chat.sessionId) return send(HUMAN_TEXT);
    ui.human.disabled = true;
    let info;
    try {
      const res = await api("/v1/sessions/" + encodeURIComponent(chat.sessionId) + "/handoff", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ note: null }),
      });
      if (res.status === 404) {
        setSession(null); // the conversation is gone: a new one starts with the request
        return send(HUMAN_TEXT);
      }
      if (res.ok) {
        const body = await res.json();
        if (body.notice) addSystem(String(body.notice));
        return applyHandoff(body.handoff);
      }
      info = await httpFailure(res);
    } catch (err) {
      info = err instanceof Failure ? err.info : { code: "network" };
    } finally {
      syncHuman();
    }
    addSystem(info.code === "handoff_unavailable" ? t("err_handoff") : describe(info), "error");
  }

  /** Follow the conversation feed of the current handoff (fetch + SSE, resumable, deduplicated). */
  function startFeed() {
    const sid = chat.sessionId;
    clearTimeout(feed.linger);
    if (!sid) return;
    if (feed.live && feed.sid === sid) {
      feed.hid = hand.id;
      return;
    }
    stopFeed();
    const saved = store.getJSON(userKey("feed"));
    const mine = saved && saved.sid === sid;
    Object.assign(feed, {
      sid,
      hid: hand.id,
      seq: mine ? Number(saved.seq) || 0 : 0,
      armed: !hand.id || !!(mine && saved.hid === hand.id),
    });
    runFeed((feed.live = {}));
  }

  function stopFeed(delay = 0) {
    clearTimeout(feed.linger);
    if (delay) {
      if (feed.live) feed.linger = setTimeout(stopFeed, delay);
      return;
    }
    feed.live = null;
    if (feed.conn) feed.conn.abort();
    feed.conn = null;
  }

  async function runFeed(live) {
    for (let failures = 0; feed.live === live; ) {
      await backoff(Math.min(failures, 8));
      if (feed.live !== live) return;
      const conn = (feed.conn = new AbortController());
      let events = 0;
      try {
        const res = await api("/v1/sessions/" + encodeURIComponent(feed.sid) + "/events?after=" + feed.seq, {
          headers: { Accept: "text/event-stream" },
          signal: conn.signal,
        });
        if (res.ok) events = (await readStream(res, conn, (event) => onFeed(live, event))).events;
        else if (!RETRYABLE_STATUS.includes(res.status)) return feed.live === live && stopFeed();
      } catch (err) {
        if (err instanceof Failure && !err.info.retryable) return feed.live === live && stopFeed();
      }
      failures = events ? 1 : failures + 1;
    }
  }

  function onFeed(live, event) {
    if (feed.live !== live) return true;
    const seq = seqOf(event.id);
    if (seq !== null && seq <= feed.seq) return false; // already read (before a reload or a reconnect)
    let d;
    try {
      d = JSON.parse(event.data) || {};
    } catch {
      return false;
    }
    if (!feed.armed && event.event === "handoff" && d.id === feed.hid) feed.armed = true;
    if (seq !== null) {
      feed.seq = seq;
      store.set(userKey("feed"), JSON.stringify({ sid: feed.sid, seq, hid: feed.armed ? feed.hid : null }));
    }
    if (!feed.armed) return false;
    const text = String(d.text ?? "");
    if (event.event === "handoff") applyHandoff(d);
    else if (event.event === "typing") typing(d.agent && d.agent.name);
    else if (event.event === "agent") {
      typing(null);
      addAgent(text, d.agent && d.agent.name, d.id);
    } else if (event.event === "notice") {
      // The server's words for a change we already noted replace our short line.
      if (hand.end && hand.end.isConnected) hand.end.textContent = text;
      else addSystem(text);
      hand.end = null;
    } else if (event.event === "user") {
      // The shopper's own message from another tab (this one shows its own already).
      const known = d.id && ui.log.querySelector('.msg.user[data-turn-id="' + CSS.escape(String(d.id)) + '"]');
      if (!known && !(chat.turn && chat.turn.question === text)) addUser(text, d.id);
    }
    return false;
  }

  /** 1–5 stars and an optional comment for the conversation a person just closed. */
  function showRating() {
    const sid = chat.sessionId;
    let score = 0;
    const submit = h("button", { type: "submit", class: "rate-send", disabled: true, text: t("rateSend") });
    const stars = [1, 2, 3, 4, 5].map((n) =>
      h("button", {
        type: "button",
        class: "star",
        text: "★",
        "aria-label": t("star", { n }),
        "aria-pressed": "false",
        onclick: () => {
          score = n;
          stars.forEach((b, i) => {
            b.setAttribute("aria-pressed", String(i + 1 === n));
            b.toggleAttribute("data-on", i < n);
          });
          submit.disabled = false;
        },
      }),
    );
    const comment = h("textarea", {
      class: "rate-comment",
      rows: "2",
      maxlength: "1000",
      placeholder: t("comment"),
      "aria-label": t("comment"),
    });
    const form = h(
      "form",
      { class: "rate", "aria-label": t("rateAsk") },
      h("p", { class: "rate-title", text: t("rateAsk") }),
      h("div", { class: "stars", role: "group", "aria-label": t("rateAsk") }, ...stars),
      comment,
      submit,
    );
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      if (!score || submit.disabled) return;
      submit.disabled = true;
      form.querySelector(".error")?.remove();
      let info;
      try {
        const res = await api("/v1/sessions/" + encodeURIComponent(sid) + "/rating", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ score, comment: comment.value.trim() || null }),
        });
        if (res.ok) {
          form.replaceChildren(h("p", { class: "rate-title", role: "status", text: t("thanks") }));
          return;
        }
        info = await httpFailure(res);
      } catch (err) {
        info = err instanceof Failure ? err.info : { code: "network" };
      }
      const rated = info.code === "nothing_to_rate";
      form.append(h("p", { class: "error", role: "alert", text: rated ? t("err_rated") : describe(info) }));
      submit.disabled = rated;
    });
    ui.log.append(form);
    scrollDown(true);
  }

  // ---------------------------------------------------------------- start
  function init() {
    buildUI();
    const remembered = store.get(PREFIX + "open");
    // Opened at load: don't steal the page's focus (except as the full-page widget).
    setOpen(START_OPEN ? remembered !== "0" || MODE === "page" : remembered === "1", MODE === "page");
  }

  window.Kefu = Object.freeze({
    version: VERSION,
    open: () => setOpen(true),
    close: () => setOpen(false),
    toggle: () => setOpen(!chat.open),
    /** Ask a question as if the shopper typed it. */
    send: (text) => send(text),
    /** The widget's safe Markdown renderer (a DocumentFragment; never parses HTML). */
    renderMarkdown,
  });

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init, { once: true });
  else init();
})();
