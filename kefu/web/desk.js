/*! kefu agent desk — plain ES2020, no dependencies, no build step. Served by kefu at /desk.js for /desk.
 *
 * The page (desk.html) holds the structure; this file fills in the texts (zh, or en when the browser's language
 * is not Chinese; ?lang=en|zh forces one), logs the agent in, and keeps the queue and the open conversation live
 * over Server-Sent Events (EventSource reconnects by itself and resumes by Last-Event-ID; events are still
 * de-duplicated by their sequence number, so a reconnect never shows a message twice).
 *
 * Safety rules of this file: text from shoppers, the bot and agents only reaches the page through textContent /
 * setAttribute — never innerHTML. The login is an HttpOnly cookie; no token is kept in script-readable storage.
 */
(() => {
  "use strict";

  const API = "/desk/api";
  const PARAMS = new URLSearchParams(location.search);
  const LANG = /^zh/i.test(PARAMS.get("lang") || navigator.language || "") ? "zh" : "en";
  const TYPING_EVERY_MS = 3000; // POST …/typing at most this often while the agent types
  const READ_DELAY_MS = 300;
  const FEED_EVENTS = ["handoff", "agent", "user", "notice", "typing", "rating", "message"];

  // ---------------------------------------------------------------- UI strings
  const STRINGS = {
    zh: {
      title: "客服工作台",
      skip: "跳到回复框",
      logout: "退出登录",
      dismiss: "知道了",
      loginTitle: "客服登录",
      name: "用户名",
      password: "密码",
      login: "登录",
      loggingIn: "正在登录…",
      queue: "会话队列",
      queueEmpty: "暂无等待中的会话",
      queueMeta: "在线客服 {n} 人 · {open}",
      openNow: "工作时间内",
      closedNow: "非工作时间",
      queuedCount: "{n} 个排队中",
      pick: "从左侧选择一个会话",
      loading: "正在加载…",
      actions: "会话操作",
      claim: "接入",
      transfer: "转接",
      release: "回到机器人",
      close: "结束会话",
      transcript: "对话记录",
      reply: "回复",
      replyPlaceholder: "输入回复，回车发送，Shift+回车换行",
      send: "发送",
      hintClaim: "接入这个会话后才能回复。",
      hintOther: "这个会话由 {agent} 负责。",
      hintBot: "这个会话由机器人回复，顾客转人工后才能接入。",
      hintClosed: "这个会话已结束。",
      details: "会话详情",
      info: "会话信息",
      canned: "快捷回复",
      cannedSearch: "搜索快捷回复",
      cannedNone: "没有匹配的快捷回复",
      cannedInserted: "已插入快捷回复",
      notes: "内部备注",
      noteText: "备注内容",
      notePlaceholder: "只有客服能看到",
      private: "仅自己可见",
      addNote: "添加备注",
      notesNone: "还没有备注",
      privateBadge: "私密",
      transferTitle: "转接给其他客服",
      agent: "客服",
      online: "在线",
      offline: "离线",
      noAgents: "没有可以转接的客服",
      cancel: "取消",
      closeTitle: "结束会话",
      outcome: "处理结果",
      out_resolved: "已解决",
      out_unresolved: "未解决",
      out_spam: "垃圾信息",
      state_bot: "机器人",
      state_queued: "排队中",
      state_agent: "人工服务中",
      state_closed: "已结束",
      reason_shopper_asked: "顾客要求转人工",
      reason_flow: "流程转人工",
      reason_button: "顾客点了转人工",
      reason_model: "机器人判断需要人工",
      reason_repeated_failure: "机器人多次没答上",
      reason_frustration: "顾客情绪不满",
      role_user: "顾客",
      role_assistant: "机器人",
      role_agent: "客服",
      role_system: "系统",
      src_faq: "FAQ",
      src_kb: "知识库",
      src_llm: "模型",
      src_model: "模型",
      src_flow: "流程",
      src_fallback: "兜底回复",
      src_cache: "缓存",
      src_human: "人工",
      src_moderation: "内容审核",
      status_interrupted: "回答中断",
      status_failed: "回答失败",
      sending: "发送中…",
      notSent: "未发送",
      waiting: "已等待 {t}",
      waited: "等待 {t}",
      unread: "{n} 条未读",
      noAgent: "未分配",
      you: "我",
      meSuffix: "（我）",
      colon: "：",
      codeSuffix: "（{code}）",
      ev_queued: "顾客转人工，等待接入（{reason}）",
      ev_queued_plain: "顾客转人工，等待接入",
      ev_joined: "客服 {agent} 已接入",
      ev_transferred: "已转接给 {agent}",
      ev_bot: "已回到机器人",
      ev_closed: "会话已结束",
      ev_closed_outcome: "会话已结束（{outcome}）",
      ev_rating: "顾客评分：{score} 星",
      shopperSaw: "顾客看到：",
      typing: "{agent} 正在输入…",
      f_user: "顾客",
      f_session: "会话",
      f_state: "状态",
      f_agent: "负责客服",
      f_reason: "转人工原因",
      f_flow: "进行中的流程",
      f_slots: "已收集的信息",
      f_rating: "顾客评分",
      f_created: "开始时间",
      f_offline: "非工作时间留言",
      yes: "是",
      stars: "{score} 星",
      live_on: "实时连接正常",
      live_connecting: "正在连接…",
      live_off: "连接已断开，正在重试…",
      justNow: "刚刚",
      minAgo: "{n} 分钟前",
      hourAgo: "{n} 小时前",
      dayAgo: "{n} 天前",
      errorCode: "错误代码",
      err_already_claimed: "已被其他客服接入",
      err_not_yours: "这个会话由其他客服负责，您不能回复",
      err_bad_credentials: "用户名或密码错误",
      err_unauthorized: "登录已过期，请重新登录",
      err_forbidden: "没有权限执行这个操作",
      err_not_found: "会话不存在或已被删除",
      err_rate_limited: "操作太频繁了，请稍后再试",
      err_network: "网络连接失败，请检查网络后重试",
      err_conflict: "会话状态已经变了，请刷新后再试",
      err_invalid: "填写的内容有误",
      err_empty: "请先输入内容",
      err_server: "服务器出错了，请稍后重试",
      err_generic: "操作失败",
      err_login_fields: "请输入用户名和密码",
    },
    en: {
      title: "Agent desk",
      skip: "Skip to the reply box",
      logout: "Log out",
      dismiss: "Dismiss",
      loginTitle: "Agent login",
      name: "User name",
      password: "Password",
      login: "Log in",
      loggingIn: "Logging in…",
      queue: "Queue",
      queueEmpty: "Nobody is waiting",
      queueMeta: "{n} agents online · {open}",
      openNow: "within opening hours",
      closedNow: "outside opening hours",
      queuedCount: "{n} waiting",
      pick: "Pick a conversation on the left",
      loading: "Loading…",
      actions: "Conversation actions",
      claim: "Claim",
      transfer: "Transfer",
      release: "Back to bot",
      close: "Close",
      transcript: "Conversation",
      reply: "Reply",
      replyPlaceholder: "Type a reply, Enter to send, Shift+Enter for a new line",
      send: "Send",
      hintClaim: "Claim this conversation to reply.",
      hintOther: "{agent} is handling this conversation.",
      hintBot: "The bot is answering; you can claim it once the shopper asks for a person.",
      hintClosed: "This conversation is closed.",
      details: "Conversation details",
      info: "Details",
      canned: "Canned replies",
      cannedSearch: "Search canned replies",
      cannedNone: "No canned reply matches",
      cannedInserted: "Canned reply inserted",
      notes: "Internal notes",
      noteText: "Note",
      notePlaceholder: "Only agents see this",
      private: "Only me",
      addNote: "Add note",
      notesNone: "No notes yet",
      privateBadge: "private",
      transferTitle: "Transfer to another agent",
      agent: "Agent",
      online: "online",
      offline: "offline",
      noAgents: "No other agent to transfer to",
      cancel: "Cancel",
      closeTitle: "Close the conversation",
      outcome: "Outcome",
      out_resolved: "Resolved",
      out_unresolved: "Unresolved",
      out_spam: "Spam",
      state_bot: "bot",
      state_queued: "queued",
      state_agent: "with an agent",
      state_closed: "closed",
      reason_shopper_asked: "shopper asked for a person",
      reason_flow: "handed over by a flow",
      reason_button: "shopper pressed “talk to a person”",
      reason_model: "the bot asked for a person",
      reason_repeated_failure: "the bot failed repeatedly",
      reason_frustration: "shopper is frustrated",
      role_user: "Shopper",
      role_assistant: "Bot",
      role_agent: "Agent",
      role_system: "System",
      src_faq: "FAQ",
      src_kb: "knowledge base",
      src_llm: "model",
      src_model: "model",
      src_flow: "flow",
      src_fallback: "fallback",
      src_cache: "cache",
      src_human: "human",
      src_moderation: "moderation",
      status_interrupted: "interrupted",
      status_failed: "failed",
      sending: "sending…",
      notSent: "not sent",
      waiting: "waiting {t}",
      waited: "waited {t}",
      unread: "{n} unread",
      noAgent: "unassigned",
      you: "me",
      meSuffix: " (me)",
      colon: ": ",
      codeSuffix: " ({code})",
      ev_queued: "The shopper asked for a person ({reason})",
      ev_queued_plain: "The shopper asked for a person",
      ev_joined: "{agent} joined",
      ev_transferred: "Transferred to {agent}",
      ev_bot: "Back to the bot",
      ev_closed: "Conversation closed",
      ev_closed_outcome: "Conversation closed ({outcome})",
      ev_rating: "Shopper rated {score} stars",
      shopperSaw: "The shopper was told: ",
      typing: "{agent} is typing…",
      f_user: "Shopper",
      f_session: "Session",
      f_state: "State",
      f_agent: "Agent",
      f_reason: "Handoff reason",
      f_flow: "Running flow",
      f_slots: "Collected so far",
      f_rating: "Rating",
      f_created: "Started",
      f_offline: "Left outside opening hours",
      yes: "yes",
      stars: "{score} stars",
      live_on: "Live",
      live_connecting: "Connecting…",
      live_off: "Disconnected, retrying…",
      justNow: "just now",
      minAgo: "{n} min ago",
      hourAgo: "{n} h ago",
      dayAgo: "{n} d ago",
      errorCode: "Error code",
      err_already_claimed: "Another agent has already claimed this conversation",
      err_not_yours: "Another agent is handling this conversation; you can't reply",
      err_bad_credentials: "Wrong user name or password",
      err_unauthorized: "Your login has expired. Please log in again",
      err_forbidden: "You are not allowed to do that",
      err_not_found: "This conversation does not exist (any more)",
      err_rate_limited: "Too many requests. Please try again shortly",
      err_network: "Could not reach the server. Check your connection and try again",
      err_conflict: "The conversation has changed. Refresh and try again",
      err_invalid: "Please check what you entered",
      err_empty: "Please type something first",
      err_server: "The server had a problem. Please try again",
      err_generic: "That did not work",
      err_login_fields: "Enter your user name and password",
    },
  };
  const t = (key, vars) =>
    String(STRINGS[LANG][key] ?? STRINGS.en[key] ?? key).replace(/\{(\w+)\}/g, (_, k) => String(vars?.[k] ?? ""));
  const has = (key) => key in STRINGS[LANG];

  // ---------------------------------------------------------------- DOM helpers (no innerHTML anywhere)
  const $ = (id) => document.getElementById(id);

  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value == null || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "text") el.textContent = value;
      else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) if (child != null && child !== false) el.append(child);
    return el;
  }

  function applyStrings() {
    document.documentElement.lang = LANG === "zh" ? "zh-CN" : "en";
    document.title = t("title") + " · kefu";
    for (const el of document.querySelectorAll("[data-t]")) el.textContent = t(el.dataset.t);
    for (const el of document.querySelectorAll("[data-t-placeholder]")) el.placeholder = t(el.dataset.tPlaceholder);
    for (const el of document.querySelectorAll("[data-t-aria-label]")) el.setAttribute("aria-label", t(el.dataset.tAriaLabel));
  }

  const enc = encodeURIComponent;
  const pad = (n) => String(n).padStart(2, "0");

  function clock(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    const hours = Math.floor(s / 3600);
    const rest = pad(Math.floor((s % 3600) / 60)) + ":" + pad(s % 60);
    return hours ? hours + ":" + rest : rest;
  }

  function parseTime(value) {
    const ms = value ? Date.parse(value) : NaN;
    return Number.isFinite(ms) ? ms : null;
  }

  function timeOf(value) {
    const ms = parseTime(value);
    if (ms === null) return "";
    const d = new Date(ms);
    const today = new Date();
    const hm = pad(d.getHours()) + ":" + pad(d.getMinutes());
    return d.toDateString() === today.toDateString() ? hm : pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + hm;
  }

  function ago(value) {
    const ms = parseTime(value);
    if (ms === null) return "";
    const s = Math.max(0, (Date.now() - ms) / 1000);
    if (s < 60) return t("justNow");
    if (s < 3600) return t("minAgo", { n: Math.floor(s / 60) });
    if (s < 86400) return t("hourAgo", { n: Math.floor(s / 3600) });
    return t("dayAgo", { n: Math.floor(s / 86400) });
  }

  function seqOf(id) {
    const seq = Number(String(id || "").split(":").pop());
    return Number.isInteger(seq) && seq > 0 ? seq : null;
  }

  const label = (prefix, value) => (value && has(prefix + value) ? t(prefix + value) : String(value || ""));
  const agentName = (agent) => (agent ? String(agent.display_name || agent.name || "") : "");

  // ---------------------------------------------------------------- the API (cookie session; JSON errors)
  class ApiError extends Error {
    constructor(status, code, message) {
      super(message || code);
      this.status = status;
      this.code = code;
      this.detail = message || "";
    }
  }

  async function call(method, path, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let res;
    try {
      res = await fetch(API + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "same-origin",
        cache: "no-store",
      });
    } catch {
      throw new ApiError(0, "network", "");
    }
    let data = null;
    if (res.status !== 204) {
      try {
        data = await res.json();
      } catch {
        data = null;
      }
    }
    if (!res.ok) {
      const err = (data && data.error) || {};
      const error = new ApiError(res.status, String(err.code || "http_" + res.status), String(err.message || ""));
      if (res.status === 401 && path !== "/login" && desk.me) signedOut(true);
      throw error;
    }
    return data;
  }

  /** An API error in plain words for the agent. */
  function describe(err) {
    const code = String(err.code || "");
    const status = err.status || 0;
    if (has("err_" + code)) return t("err_" + code);
    if (status === 401) return t("err_unauthorized");
    if (status === 403) return t("err_forbidden");
    if (status === 404) return t("err_not_found");
    if (status === 429) return t("err_rate_limited");
    const more = err.detail ? t("colon") + err.detail : "";
    if (status === 409) return t("err_conflict") + more;
    if (status === 400 || status === 422) return t("err_invalid") + more;
    if (status >= 500) return t("err_server");
    return t("err_generic") + more;
  }

  const codeSuffix = (err) => (err.status && err.code ? t("codeSuffix", { code: err.code }) : "");

  let alertTimer = 0;
  function showError(err) {
    $("alert-text").textContent = describe(err);
    const code = err.status && err.code ? t("errorCode") + t("colon") + err.code : "";
    $("alert-code").textContent = code;
    $("alert-code").hidden = !code;
    $("alert").hidden = false;
    clearTimeout(alertTimer);
    alertTimer = setTimeout(hideError, 12000);
  }
  function hideError() {
    clearTimeout(alertTimer);
    $("alert").hidden = true;
  }

  // ---------------------------------------------------------------- state
  const desk = {
    me: null,
    stream: null, // EventSource of /desk/api/stream
    streamRetry: 0,
    queue: [],
    queueAt: 0, // when the queue was fetched (waiting times tick from there)
    queueLoading: false,
    queueDirty: false,
    queueTimer: 0,
    conv: null, // the open conversation
    opener: null, // the element that opened a dialog (focus returns to it)
    cannedTimer: 0,
    cannedQuery: null,
  };

  function setView(view) {
    document.body.dataset.view = view;
    $("login-view").hidden = view !== "login";
    $("desk-view").hidden = view !== "desk";
    $("logout").hidden = view !== "desk";
    $("me").hidden = view !== "desk";
  }

  function setLive(state) {
    const el = $("live");
    el.dataset.state = state;
    el.textContent = state === "on" ? t("live_on") : state === "connecting" ? t("live_connecting") : t("live_off");
  }

  // ---------------------------------------------------------------- login / logout
  function showLogin(message) {
    setView("login");
    $("login-error").textContent = message || "";
    $("login-password").value = "";
    const name = $("login-name");
    (name.value ? $("login-password") : name).focus();
  }

  async function onLogin(e) {
    e.preventDefault();
    const name = $("login-name").value.trim();
    const password = $("login-password").value;
    const error = $("login-error");
    if (!name || !password) {
      error.textContent = t("err_login_fields");
      (name ? $("login-password") : $("login-name")).focus();
      return;
    }
    const button = $("login-submit");
    button.disabled = true;
    button.textContent = t("loggingIn");
    error.textContent = "";
    try {
      const body = await call("POST", "/login", { name, password });
      enterDesk(body.agent);
    } catch (err) {
      error.textContent = describe(err);
      $("login-password").select();
      $("login-password").focus();
    } finally {
      button.disabled = false;
      button.textContent = t("login");
    }
  }

  async function onLogout() {
    try {
      await call("POST", "/logout");
    } catch {
      /* the cookie is dropped by the server; either way the desk closes here */
    }
    teardown();
    showLogin();
  }

  function signedOut(expired) {
    teardown();
    showLogin(expired ? t("err_unauthorized") : "");
  }

  function teardown() {
    desk.me = null;
    if (desk.stream) desk.stream.close();
    desk.stream = null;
    clearTimeout(desk.streamRetry);
    closeConversation();
    desk.queue = [];
    $("queue-list").replaceChildren();
    setLive("off");
    hideError();
  }

  function enterDesk(agent) {
    desk.me = agent || {};
    setView("desk");
    $("me").textContent = agentName(desk.me) + (desk.me.role === "admin" ? " · admin" : "");
    startStream();
    loadQueue();
    searchCanned("");
    const sid = decodeURIComponent(location.hash.slice(1));
    if (sid) openConversation(sid, false);
  }

  // ---------------------------------------------------------------- the queue (live over /desk/api/stream)
  function startStream() {
    if (desk.stream) desk.stream.close();
    clearTimeout(desk.streamRetry);
    setLive("connecting");
    const es = new EventSource(API + "/stream");
    desk.stream = es;
    es.addEventListener("open", () => {
      setLive("on");
      scheduleQueue(); // catch up on whatever changed while disconnected
    });
    es.addEventListener("ready", () => scheduleQueue()); // now counted as online
    es.addEventListener("queue", (e) => {
      scheduleQueue();
      let data = {};
      try {
        data = JSON.parse(e.data || "{}") || {};
      } catch {
        /* a bare wake-up */
      }
      const conv = desk.conv;
      if (conv && (!data.session_id || data.session_id === conv.sid)) refreshMeta(conv);
    });
    es.addEventListener("error", () => {
      if (desk.stream !== es) return;
      if (es.readyState !== EventSource.CLOSED) {
        setLive("connecting"); // EventSource reconnects by itself
        return;
      }
      // Closed for good (an HTTP error): find out why, then try again.
      setLive("off");
      desk.streamRetry = setTimeout(async () => {
        if (desk.stream !== es) return;
        try {
          await call("GET", "/me");
        } catch {
          if (!desk.me) return; // 401: signed out
        }
        if (desk.stream === es) startStream();
      }, 3000);
    });
  }

  function scheduleQueue() {
    clearTimeout(desk.queueTimer);
    desk.queueTimer = setTimeout(loadQueue, 80);
  }

  async function loadQueue() {
    if (!desk.me) return;
    if (desk.queueLoading) {
      desk.queueDirty = true;
      return;
    }
    desk.queueLoading = true;
    try {
      const body = await call("GET", "/queue");
      desk.queue = Array.isArray(body.conversations) ? body.conversations : [];
      desk.queueAt = Date.now();
      renderQueue(body);
    } catch (err) {
      if (desk.me && err.status !== 401 && err.status !== 0) showError(err); // offline: the live dot says so
    } finally {
      desk.queueLoading = false;
      if (desk.queueDirty) {
        desk.queueDirty = false;
        scheduleQueue();
      }
    }
  }

  function renderQueue(body) {
    const list = $("queue-list");
    const focused = document.activeElement && document.activeElement.closest && document.activeElement.closest(".q-item");
    const focusSid = focused ? focused.dataset.sid : null;
    const items = desk.queue.map(queueItem);
    list.replaceChildren(...items);
    const queued = desk.queue.filter((c) => c.state === "queued").length;
    $("queue-count").textContent = queued ? t("queuedCount", { n: queued }) : "";
    $("queue-empty").hidden = desk.queue.length > 0;
    if (body) {
      const open = body.open_now === false ? t("closedNow") : t("openNow");
      $("queue-meta").textContent = t("queueMeta", { n: Number(body.online_agents) || 0, open });
    }
    document.title = (queued ? "(" + queued + ") " : "") + t("title") + " · kefu";
    if (focusSid) {
      const again = list.querySelector('.q-item[data-sid="' + CSS.escape(focusSid) + '"]');
      if (again) again.focus();
    }
    tick();
  }

  function queueItem(c) {
    const sid = String(c.session_id || "");
    const current = desk.conv && desk.conv.sid === sid;
    const unread = Number(c.unread) || 0;
    const button = h(
      "button",
      {
        type: "button",
        class: "q-item",
        "data-sid": sid,
        "data-state": c.state || "",
        "aria-current": current ? "true" : null,
        onclick: () => openConversation(sid, true),
      },
      h(
        "span",
        { class: "q-top" },
        h("span", { class: "q-user", text: String(c.user_id || sid) }),
        h("span", { class: "state", "data-state": c.state || "", text: label("state_", c.state) }),
        unread > 0
          ? h("span", { class: "badge", title: t("unread", { n: unread }), "aria-label": t("unread", { n: unread }), text: String(unread) })
          : null,
      ),
      h("span", { class: "q-preview", text: String(c.preview || "") }),
      h(
        "span",
        { class: "q-meta" },
        h("span", { class: "q-reason", title: String(c.reason || ""), text: label("reason_", c.reason_code) || String(c.reason || "") }),
        h("span", {
          class: "q-wait",
          "data-wait": c.waiting_seconds == null ? null : String(Number(c.waiting_seconds) || 0),
          "data-ticking": c.state === "queued" ? "" : null,
        }),
      ),
      h(
        "span",
        { class: "q-meta" },
        h("span", { class: "q-agent", text: c.agent ? agentName(c.agent) : t("noAgent") }),
        h("time", { class: "q-last", "data-at": c.last_activity_at || "", datetime: c.last_activity_at || null }),
      ),
    );
    return h("li", null, button);
  }

  /** Once a second: waiting times go on counting, "last activity" stays relative. */
  function tick() {
    const elapsed = (Date.now() - desk.queueAt) / 1000;
    for (const el of document.querySelectorAll(".q-wait[data-wait]")) {
      const base = Number(el.dataset.wait) || 0;
      const ticking = el.hasAttribute("data-ticking");
      el.textContent = t(ticking ? "waiting" : "waited", { t: clock(base + (ticking ? elapsed : 0)) });
    }
    for (const el of document.querySelectorAll(".q-last[data-at]")) el.textContent = ago(el.dataset.at);
  }

  function onQueueKey(e) {
    if (e.key !== "ArrowDown" && e.key !== "ArrowUp" && e.key !== "Home" && e.key !== "End") return;
    const items = Array.from($("queue-list").querySelectorAll(".q-item"));
    if (!items.length) return;
    e.preventDefault();
    const at = items.indexOf(document.activeElement);
    let next = 0;
    if (e.key === "ArrowDown") next = at < 0 ? 0 : Math.min(items.length - 1, at + 1);
    else if (e.key === "ArrowUp") next = at < 0 ? 0 : Math.max(0, at - 1);
    else if (e.key === "End") next = items.length - 1;
    items[next].focus();
  }

  function setUnread(sid, n) {
    const c = desk.queue.find((x) => x.session_id === sid);
    if (!c || Number(c.unread) === n) return;
    c.unread = n;
    renderQueue(null);
  }

  // ---------------------------------------------------------------- the open conversation
  function closeConversation() {
    const conv = desk.conv;
    if (!conv) return;
    if (conv.es) conv.es.close();
    clearTimeout(conv.retry);
    clearTimeout(conv.readTimer);
    clearTimeout(conv.typingTimer);
    desk.conv = null;
    $("conv-body").hidden = true;
    $("side").hidden = true;
    $("conv-empty").hidden = false;
    $("conv-empty").textContent = t("pick");
    $("transcript").replaceChildren();
  }

  async function openConversation(sid, focus) {
    if (desk.conv && desk.conv.sid === sid) {
      if (focus) focusReplyOrLog();
      return;
    }
    closeConversation();
    const conv = {
      sid,
      detail: null,
      lastSeq: 0, // the feed's last event applied (events at or below it are skipped)
      readSeq: 0,
      es: null,
      retry: 0,
      readTimer: 0,
      typingAt: 0,
      typingTimer: 0,
      metaLoading: false,
      metaAgain: false,
      feedHandoff: null,
      handoffLine: null, // {seq, el}: the last state-change line (a notice right after it joins it)
    };
    desk.conv = conv;
    history.replaceState(null, "", "#" + enc(sid));
    for (const el of document.querySelectorAll(".q-item")) {
      if (el.dataset.sid === sid) el.setAttribute("aria-current", "true");
      else el.removeAttribute("aria-current");
    }
    $("conv-empty").textContent = t("loading");
    let detail;
    try {
      detail = await call("GET", "/conversations/" + enc(sid));
    } catch (err) {
      if (desk.conv !== conv) return;
      closeConversation();
      history.replaceState(null, "", location.pathname + location.search);
      if (err.status !== 401) showError(err);
      return;
    }
    if (desk.conv !== conv) return;
    conv.detail = detail;
    conv.lastSeq = Number(detail.last_seq) || 0;
    conv.feedHandoff = detail.handoff || null;
    $("conv-empty").hidden = true;
    $("conv-body").hidden = false;
    $("side").hidden = false;
    $("reply").value = "";
    $("typing").textContent = "";
    renderTranscript(conv);
    renderMeta(conv);
    renderNotes(Array.isArray(detail.notes) ? detail.notes : []);
    connectFeed(conv);
    markRead(conv);
    if (focus) focusReplyOrLog();
  }

  function focusReplyOrLog() {
    if (canReply(desk.conv)) $("reply").focus();
    else if (!$("act-claim").disabled) $("act-claim").focus();
    else $("transcript").focus();
  }

  function isMine(handoff) {
    const me = desk.me;
    if (!me || !handoff) return false;
    if (handoff.agent_id && me.id) return handoff.agent_id === me.id;
    const agent = handoff.agent;
    if (!agent) return false;
    if (agent.id && me.id) return agent.id === me.id;
    if (agent.name && me.name && agent.name === me.name) return true;
    return !!agent.display_name && agent.display_name === me.display_name;
  }

  const stateOf = (conv) => String((conv.detail && (conv.detail.state || (conv.detail.handoff || {}).state)) || "bot");
  const isAdmin = () => !!desk.me && desk.me.role === "admin";

  function canReply(conv) {
    return !!conv && !!conv.detail && stateOf(conv) === "agent" && isMine(conv.detail.handoff);
  }

  /** The header, the action buttons, the reply hint and the info panel from ``conv.detail``. */
  function renderMeta(conv) {
    const d = conv.detail;
    const handoff = d.handoff || null;
    const state = stateOf(conv);
    const mine = isMine(handoff);
    const owner = mine || isAdmin();
    $("conv-title").textContent = String(d.user_id || d.session_id || conv.sid);
    const badge = $("conv-state");
    badge.dataset.state = state;
    badge.textContent = label("state_", state);
    const agent = handoff && handoff.agent && state === "agent" ? agentName(handoff.agent) : "";
    $("conv-agent").textContent = agent ? t("agent") + t("colon") + agent + (mine ? t("meSuffix") : "") : "";
    $("conv-reason").textContent = handoff ? reasonText(handoff) : "";

    $("act-claim").disabled = state !== "queued";
    $("act-transfer").disabled = !(state === "agent" && owner);
    $("act-release").disabled = !(state === "queued" || (state === "agent" && owner));
    $("act-close").disabled = !(state === "queued" || (state === "agent" && owner)); // a queued one may be spam
    const reply = canReply(conv);
    $("send").disabled = !reply;
    $("reply").setAttribute("aria-describedby", "reply-hint");
    let hint = "";
    if (!reply) {
      if (state === "queued") hint = t("hintClaim");
      else if (state === "agent") hint = t("hintOther", { agent: agentName(handoff && handoff.agent) });
      else if (state === "closed") hint = t("hintClosed");
      else hint = t("hintBot");
    }
    $("reply-hint").textContent = hint;
    $("composer").dataset.enabled = String(reply);
    renderInfo(conv);
  }

  function reasonText(handoff) {
    const code = handoff.reason_code || handoff.reason;
    const known = code && has("reason_" + code) ? t("reason_" + code) : "";
    let text = handoff.reason_text || (handoff.reason && handoff.reason !== code ? handoff.reason : "");
    text = text ? String(text) : "";
    if (/^[a-z0-9_]+$/.test(text) && known) text = ""; // a flow's reason code, not words for people
    if (!known) return text || String(code || "");
    return text && text !== known ? known + " · " + text : known;
  }

  function flowOf(d) {
    const handoff = d.handoff || {};
    const context = handoff.context || d.context || {};
    let flow = d.flow ?? handoff.flow ?? context.flow ?? null;
    let slots = d.slots ?? handoff.slots ?? handoff.summary ?? context.slots ?? null;
    if (flow && typeof flow === "object") {
      slots = slots ?? flow.slots ?? null;
      flow = flow.name ?? flow.flow ?? null;
    }
    return { flow: flow ? String(flow) : "", slots: slots && typeof slots === "object" ? slots : null };
  }

  function ratingOf(d) {
    const raw = d.rating ?? (d.handoff ? d.handoff.rating : null) ?? null;
    if (raw == null) return null;
    if (typeof raw === "object") return raw.score == null ? null : { score: Number(raw.score), comment: raw.comment || "" };
    const comment = d.rating_comment ?? (d.handoff ? d.handoff.rating_comment : null) ?? "";
    return { score: Number(raw), comment: comment || "" };
  }

  function renderInfo(conv) {
    const d = conv.detail;
    const handoff = d.handoff || null;
    const rows = [];
    const row = (key, value, attrs) => {
      if (value == null || value === "") return;
      rows.push(h("div", attrs || null, h("dt", { text: t(key) }), h("dd", null, value)));
    };
    row("f_user", String(d.user_id || ""));
    row("f_session", String(d.session_id || conv.sid));
    row("f_state", label("state_", stateOf(conv)));
    if (handoff && handoff.agent) row("f_agent", agentName(handoff.agent));
    if (handoff) row("f_reason", reasonText(handoff));
    if (handoff && handoff.offline) row("f_offline", t("yes"));
    const { flow, slots } = flowOf(d);
    row("f_flow", flow);
    if (slots && Object.keys(slots).length) {
      const list = h("ul", { class: "slots" });
      for (const [key, value] of Object.entries(slots)) {
        const shown = value !== null && typeof value === "object" ? JSON.stringify(value) : String(value ?? "");
        list.append(h("li", null, h("span", { class: "slot-key", text: key }), h("span", { class: "slot-value", text: shown })));
      }
      row("f_slots", list);
    }
    const rating = ratingOf(d);
    if (rating) {
      const stars = h("span", { class: "stars", "aria-hidden": "true", text: "★".repeat(rating.score) + "☆".repeat(Math.max(0, 5 - rating.score)) });
      const box = h("span", { class: "rating", "data-score": String(rating.score) }, stars, " ", t("stars", { score: rating.score }));
      if (rating.comment) box.append(h("span", { class: "rating-comment", text: String(rating.comment) }));
      row("f_rating", box, { class: "rating-row" });
    }
    row("f_created", timeOf(d.created_at));
    $("info").replaceChildren(...rows);
  }

  /** Re-read the conversation's state (not its transcript, which only ever grows by events). */
  async function refreshMeta(conv) {
    if (conv.metaLoading) {
      conv.metaAgain = true;
      return;
    }
    conv.metaLoading = true;
    try {
      const detail = await call("GET", "/conversations/" + enc(conv.sid));
      if (desk.conv !== conv) return;
      const rest = { ...detail };
      delete rest.messages; // the transcript on screen stays as the events built it
      Object.assign(conv.detail, rest);
      renderMeta(conv);
    } catch {
      /* the next change tries again */
    } finally {
      conv.metaLoading = false;
      if (conv.metaAgain && desk.conv === conv) {
        conv.metaAgain = false;
        refreshMeta(conv);
      }
    }
  }

  function applyHandoff(conv, handoff) {
    if (!handoff || desk.conv !== conv) return;
    conv.detail.handoff = { ...(conv.detail.handoff || {}), ...handoff };
    if (handoff.state) conv.detail.state = handoff.state;
    renderMeta(conv);
  }

  // ---------------------------------------------------------------- the transcript
  const log = () => $("transcript");

  function nearBottom() {
    const el = log();
    return el.scrollHeight - el.scrollTop - el.clientHeight < 120;
  }
  function scrollDown(force) {
    const el = log();
    if (force || nearBottom()) el.scrollTop = el.scrollHeight;
  }

  function renderTranscript(conv) {
    const messages = Array.isArray(conv.detail.messages) ? conv.detail.messages : [];
    log().replaceChildren(...messages.map((m) => messageEl(m)));
    const handoff = conv.detail.handoff;
    if (handoff && (handoff.state === "queued" || conv.detail.state === "queued")) log().append(systemEl(handoffLine(handoff, null), "handoff"));
    scrollDown(true);
  }

  function messageEl(m) {
    const role = ["user", "assistant", "agent"].includes(m.role) ? m.role : "system";
    if (role === "system") return systemEl(String(m.content ?? ""), "notice");
    let who = t("role_" + role);
    if (role === "agent") {
      const author = String(m.author || (m.agent && agentName(m.agent)) || "");
      if (author) who = author;
    }
    const head = h("div", { class: "msg-head" }, h("span", { class: "who", text: who }));
    if (role === "assistant" && m.source) head.append(h("span", { class: "src", "data-source": m.source, text: label("src_", m.source) }));
    if (m.status === "interrupted" || m.status === "failed") head.append(h("span", { class: "src warn", text: t("status_" + m.status) }));
    // Content moderation's mark ("flag:ads", "block:abuse"): shown so an agent can review it.
    if (m.moderation) head.append(h("span", { class: "src warn", "data-moderation": m.moderation, text: String(m.moderation) }));
    if (m.created_at) head.append(h("time", { datetime: m.created_at, text: timeOf(m.created_at) }));
    return h(
      "div",
      { class: "msg", "data-role": role, "data-msg-id": m.id || null, "data-state": m.pending ? "sending" : null },
      head,
      h("div", { class: "bubble", text: String(m.content ?? "") }),
    );
  }

  function systemEl(text, kind) {
    return h("div", { class: "sys", "data-kind": kind }, h("span", { text }));
  }

  function append(el) {
    const stick = nearBottom();
    log().append(el);
    scrollDown(stick);
    return el;
  }

  function handoffLine(data, previous) {
    const state = data.state;
    const agent = agentName(data.agent);
    if (state === "queued") {
      const reason = reasonText(data);
      return reason ? t("ev_queued", { reason }) : t("ev_queued_plain");
    }
    if (state === "agent") {
      const before = previous && previous.state === "agent" ? agentName(previous.agent) : "";
      return before && before !== agent ? t("ev_transferred", { agent }) : t("ev_joined", { agent });
    }
    if (state === "bot") return t("ev_bot");
    if (state === "closed") {
      return data.outcome ? t("ev_closed_outcome", { outcome: label("out_", data.outcome) }) : t("ev_closed");
    }
    return String(state || "");
  }

  // ---------------------------------------------------------------- the live feed of the open conversation
  function connectFeed(conv) {
    if (desk.conv !== conv) return;
    if (conv.es) conv.es.close();
    // ?after= for the first connection; EventSource's own reconnects send Last-Event-ID.
    const es = new EventSource(API + "/conversations/" + enc(conv.sid) + "/events?after=" + conv.lastSeq);
    conv.es = es;
    for (const kind of FEED_EVENTS) es.addEventListener(kind, (e) => onFeedEvent(conv, es, kind, e));
    es.addEventListener("error", () => {
      if (conv.es !== es || desk.conv !== conv) return;
      if (es.readyState !== EventSource.CLOSED) return; // reconnecting by itself
      es.close();
      conv.es = null;
      conv.retry = setTimeout(() => {
        if (desk.conv === conv && !conv.es && desk.me) connectFeed(conv); // resumes after conv.lastSeq
      }, 3000);
    });
  }

  function onFeedEvent(conv, es, kind, e) {
    if (desk.conv !== conv || conv.es !== es) return;
    let data;
    try {
      data = JSON.parse(e.data || "{}") || {};
    } catch {
      return;
    }
    if (kind === "typing") return showTyping(conv, data); // live only: no id (its lastEventId is the previous one's)
    const seq = seqOf(e.lastEventId);
    if (seq !== null) {
      if (seq <= conv.lastSeq) return; // already shown (a replay after a reconnect)
      conv.lastSeq = seq;
    }
    switch (kind) {
      case "agent":
        onAgentMessage(data, seq);
        break;
      case "user": {
        $("typing").textContent = "";
        const el = messageEl({ role: "user", content: data.text, created_at: data.created_at, id: data.id });
        if (seq !== null) el.dataset.seq = String(seq);
        append(el);
        break;
      }
      case "message":
        if (data.role) append(messageEl(data));
        break;
      case "notice":
        if (!data.text) break;
        if (conv.handoffLine && conv.handoffLine.seq === seq - 1 && conv.handoffLine.el.isConnected) {
          // What the shopper was told about the state change just shown: one block, not two.
          conv.handoffLine.el.append(h("span", { class: "sys-note", text: t("shopperSaw") + String(data.text) }));
        } else {
          append(systemEl(String(data.text), "notice"));
        }
        break;
      case "rating": {
        const score = Number(data.score);
        conv.detail.handoff = { ...(conv.detail.handoff || {}), rating: { score, comment: data.comment || "" } };
        const line = append(systemEl(t("ev_rating", { score }), "rating"));
        if (data.comment) line.append(h("span", { class: "sys-note", text: String(data.comment) }));
        renderInfo(conv);
        break;
      }
      case "handoff": {
        // The line compares with the feed's previous state (not with what an action's response already set).
        const previous = conv.feedHandoff;
        conv.feedHandoff = data;
        const el = append(systemEl(handoffLine(data, previous), "handoff"));
        el.dataset.state = String(data.state || "");
        if (seq !== null) conv.handoffLine = { seq, el };
        applyHandoff(conv, data);
        if (data.rating != null) renderInfo(conv);
        break;
      }
      default:
        break;
    }
    scheduleRead(conv);
  }

  /** An agent's message from the feed: our own bubble shown while sending is adopted (by seq, id or text). */
  function onAgentMessage(data, seq) {
    const id = data.id ? String(data.id) : "";
    const pending = Array.from(log().querySelectorAll('.msg[data-role="agent"][data-pending]'));
    const el =
      pending.find((x) => seq !== null && x.dataset.seq === String(seq)) ||
      pending.find((x) => id && x.dataset.msgId === id) ||
      pending.find((x) => !x.dataset.seq && x.querySelector(".bubble").textContent === String(data.text ?? ""));
    if (el) {
      el.removeAttribute("data-pending");
      el.removeAttribute("data-state");
      if (id) el.dataset.msgId = id;
      if (seq !== null) el.dataset.seq = String(seq);
      el.querySelector(".msg-head .pending")?.remove();
      append(el); // its place in the feed's order
      return;
    }
    const shown = messageEl({ role: "agent", content: data.text, author: agentName(data.agent), created_at: data.created_at, id });
    if (seq !== null) shown.dataset.seq = String(seq);
    append(shown);
  }

  function showTyping(conv, data) {
    const who = data.agent ? agentName(data.agent) : "";
    if (!who || (desk.me && who === agentName(desk.me))) return;
    $("typing").textContent = t("typing", { agent: who });
    clearTimeout(conv.typingTimer);
    conv.typingTimer = setTimeout(() => ($("typing").textContent = ""), 4000);
  }

  function scheduleRead(conv) {
    clearTimeout(conv.readTimer);
    conv.readTimer = setTimeout(() => markRead(conv), READ_DELAY_MS);
  }

  async function markRead(conv) {
    if (desk.conv !== conv || document.hidden || conv.lastSeq <= conv.readSeq) return;
    const seq = conv.lastSeq;
    try {
      await call("POST", "/conversations/" + enc(conv.sid) + "/read", { seq });
      conv.readSeq = Math.max(conv.readSeq, seq);
      setUnread(conv.sid, 0);
    } catch {
      /* unread counts are a convenience: the next event tries again */
    }
  }

  // ---------------------------------------------------------------- actions
  async function act(button, path, body) {
    const conv = desk.conv;
    if (!conv) return null;
    button.disabled = true;
    try {
      const res = await call("POST", "/conversations/" + enc(conv.sid) + path, body);
      hideError();
      if (res && res.handoff) applyHandoff(conv, res.handoff);
      scheduleQueue();
      return res || {};
    } catch (err) {
      if (err.status !== 401) showError(err);
      if (desk.conv === conv) refreshMeta(conv); // show who has it now
      return null;
    } finally {
      if (desk.conv === conv && conv.detail) renderMeta(conv);
      else button.disabled = false;
    }
  }

  async function claim() {
    const res = await act($("act-claim"), "/claim");
    if (res) $("reply").focus();
  }

  async function release() {
    await act($("act-release"), "/release");
  }

  // ---------------------------------------------------------------- dialogs (Esc closes them: <dialog>)
  function openDialog(dialog, focus) {
    desk.opener = document.activeElement;
    for (const el of dialog.querySelectorAll(".form-error")) el.textContent = "";
    dialog.showModal();
    if (focus) focus.focus();
  }

  function wireDialog(dialog) {
    dialog.addEventListener("close", () => {
      const back = desk.opener;
      desk.opener = null;
      if (back && back.isConnected && !back.disabled) back.focus();
      else if (desk.conv) focusReplyOrLog();
    });
    for (const el of dialog.querySelectorAll("[data-cancel]")) el.addEventListener("click", () => dialog.close());
  }

  async function openTransfer() {
    const dialog = $("transfer-dialog");
    const select = $("transfer-agent");
    select.replaceChildren();
    openDialog(dialog, select);
    let agents = [];
    try {
      const body = await call("GET", "/agents");
      agents = Array.isArray(body.agents) ? body.agents : [];
    } catch (err) {
      $("transfer-error").textContent = describe(err);
      return;
    }
    const current = desk.conv && desk.conv.detail && desk.conv.detail.handoff ? desk.conv.detail.handoff.agent : null;
    const others = agents.filter(
      (a) => !(desk.me && (a.id === desk.me.id || a.name === desk.me.name)) && !(current && current.id && a.id === current.id),
    );
    others.sort((a, b) => Number(!!b.online) - Number(!!a.online));
    for (const a of others) {
      const text = agentName(a) + (a.name && a.name !== a.display_name ? " (" + a.name + ")" : "") + " · " + (a.online ? t("online") : t("offline"));
      select.append(h("option", { value: String(a.name), "data-online": a.online ? "true" : "false", text }));
    }
    $("transfer-ok").disabled = others.length === 0;
    if (!others.length) $("transfer-error").textContent = t("noAgents");
    if (dialog.open) select.focus();
  }

  async function onTransfer(e) {
    e.preventDefault();
    const name = $("transfer-agent").value;
    if (!name) return;
    const conv = desk.conv;
    $("transfer-ok").disabled = true;
    try {
      const res = await call("POST", "/conversations/" + enc(conv.sid) + "/transfer", { agent: name });
      if (res && res.handoff) applyHandoff(conv, res.handoff);
      scheduleQueue();
      $("transfer-dialog").close();
    } catch (err) {
      $("transfer-error").textContent = describe(err) + codeSuffix(err);
      if (desk.conv === conv) refreshMeta(conv);
    } finally {
      $("transfer-ok").disabled = false;
    }
  }

  function openClose() {
    openDialog($("close-dialog"), $("close-form").querySelector('input[name="outcome"]:checked'));
  }

  async function onClose(e) {
    e.preventDefault();
    const outcome = new FormData($("close-form")).get("outcome") || "resolved";
    const conv = desk.conv;
    $("close-ok").disabled = true;
    try {
      const res = await call("POST", "/conversations/" + enc(conv.sid) + "/close", { outcome });
      if (res && res.handoff) applyHandoff(conv, res.handoff);
      scheduleQueue();
      $("close-dialog").close();
    } catch (err) {
      $("close-error").textContent = describe(err) + codeSuffix(err);
      if (desk.conv === conv) refreshMeta(conv);
    } finally {
      $("close-ok").disabled = false;
    }
  }

  // ---------------------------------------------------------------- replying
  function onReplyKey(e) {
    // Enter sends; Shift+Enter is a new line; never send while an IME is composing (Chinese input).
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      sendReply();
    }
  }

  function onReplyInput() {
    const conv = desk.conv;
    if (!canReply(conv) || !$("reply").value.trim()) return;
    const now = Date.now();
    if (now - conv.typingAt < TYPING_EVERY_MS) return;
    conv.typingAt = now;
    call("POST", "/conversations/" + enc(conv.sid) + "/typing").catch(() => {});
  }

  async function sendReply() {
    const conv = desk.conv;
    const box = $("reply");
    const text = box.value.trim();
    if (!conv) return;
    if (!text) return;
    if (!canReply(conv)) {
      const hint = $("reply-hint");
      hint.classList.remove("flash");
      void hint.offsetWidth; // restart the highlight
      hint.classList.add("flash");
      return;
    }
    box.value = "";
    const sentAt = new Date().toISOString();
    const el = messageEl({ role: "agent", content: text, author: agentName(desk.me), created_at: sentAt, pending: true });
    el.setAttribute("data-pending", ""); // until the feed's event for it arrives
    el.querySelector(".msg-head").append(h("span", { class: "pending", text: t("sending") }));
    append(el);
    scrollDown(true);
    try {
      const res = await call("POST", "/conversations/" + enc(conv.sid) + "/messages", { text });
      if (el.hasAttribute("data-pending")) {
        // Stored. The feed's event (not here yet) adopts this bubble by its seq rather than showing it again.
        if (res && res.id) el.dataset.msgId = String(res.id);
        if (res && res.seq != null) {
          const seen = log().querySelector('.msg[data-seq="' + CSS.escape(String(res.seq)) + '"]');
          if (seen && seen !== el) el.remove(); // the feed already showed it
          else el.dataset.seq = String(res.seq);
        }
      }
      el.removeAttribute("data-state");
      el.querySelector(".msg-head .pending")?.remove();
      conv.typingAt = 0;
    } catch (err) {
      el.removeAttribute("data-pending");
      el.dataset.state = "failed";
      const note = el.querySelector(".msg-head .pending");
      if (note) note.textContent = t("notSent");
      if (!box.value) box.value = text; // let the agent send it again
      if (err.status !== 401) showError(err);
      if (desk.conv === conv) refreshMeta(conv);
    }
  }

  function insertReply(text) {
    const box = $("reply");
    box.focus();
    const start = box.selectionStart ?? box.value.length;
    const end = box.selectionEnd ?? box.value.length;
    box.setRangeText(text, start, end, "end");
    box.dispatchEvent(new Event("input"));
  }

  // ---------------------------------------------------------------- canned replies
  function onCannedInput() {
    clearTimeout(desk.cannedTimer);
    desk.cannedTimer = setTimeout(() => searchCanned($("canned-q").value.trim()), 200);
  }

  async function searchCanned(q) {
    desk.cannedQuery = q;
    let replies = [];
    try {
      const body = await call("GET", "/canned?q=" + enc(q));
      replies = Array.isArray(body.replies) ? body.replies : [];
    } catch {
      return;
    }
    if (desk.cannedQuery !== q) return; // a newer search is on its way
    const list = $("canned-list");
    if (!replies.length) {
      list.replaceChildren(h("li", { class: "empty", text: t("cannedNone") }));
      return;
    }
    list.replaceChildren(
      ...replies.map((r) =>
        h(
          "li",
          null,
          h(
            "button",
            { type: "button", class: "canned", "data-text": null, onclick: () => insertReply(String(r.text ?? "")) },
            h("span", { class: "canned-title", text: String(r.title ?? "") }),
            h("span", { class: "canned-text", text: String(r.text ?? "") }),
          ),
        ),
      ),
    );
  }

  function onCannedKey(e) {
    if (e.key === "Enter") {
      e.preventDefault();
      const first = $("canned-list").querySelector("button.canned");
      if (first) first.click();
    } else if (e.key === "ArrowDown") {
      const first = $("canned-list").querySelector("button.canned");
      if (first) {
        e.preventDefault();
        first.focus();
      }
    }
  }

  // ---------------------------------------------------------------- notes
  function renderNotes(notes) {
    const list = $("notes-list");
    if (!notes.length) {
      list.replaceChildren(h("li", { class: "empty", text: t("notesNone") }));
      return;
    }
    list.replaceChildren(
      ...notes.map((n) => {
        const author = String(
          n.author_name || agentName(n.author) || agentName(n.agent) || n.agent_name || n.agent_display_name || "",
        );
        return h(
          "li",
          { class: "note", "data-private": n.private ? "true" : "false" },
          h(
            "div",
            { class: "note-head" },
            h("span", { class: "who", text: author }),
            n.private ? h("span", { class: "tag", text: t("privateBadge") }) : null,
            n.created_at ? h("time", { datetime: n.created_at, text: timeOf(n.created_at) }) : null,
          ),
          h("p", { class: "note-text", text: String(n.text ?? "") }),
        );
      }),
    );
  }

  async function loadNotes(conv) {
    const body = await call("GET", "/conversations/" + enc(conv.sid) + "/notes");
    if (desk.conv === conv) renderNotes(Array.isArray(body.notes) ? body.notes : []);
  }

  async function onAddNote(e) {
    e.preventDefault();
    const conv = desk.conv;
    const box = $("note-text");
    const text = box.value.trim();
    if (!conv) return;
    if (!text) {
      showError({ code: "empty", status: 0 }); // no code line: not an API error
      box.focus();
      return;
    }
    const button = $("note-add");
    button.disabled = true;
    try {
      await call("POST", "/conversations/" + enc(conv.sid) + "/notes", { text, private: $("note-private").checked });
      box.value = "";
      $("note-private").checked = false;
      hideError();
      await loadNotes(conv);
    } catch (err) {
      if (err.status !== 401) showError(err);
    } finally {
      button.disabled = false;
    }
  }

  // ---------------------------------------------------------------- start
  async function init() {
    applyStrings();
    setLive("off");
    $("login-form").addEventListener("submit", onLogin);
    $("logout").addEventListener("click", onLogout);
    $("alert-close").addEventListener("click", hideError);
    $("queue-list").addEventListener("keydown", onQueueKey);
    $("act-claim").addEventListener("click", claim);
    $("act-release").addEventListener("click", release);
    $("act-transfer").addEventListener("click", openTransfer);
    $("act-close").addEventListener("click", openClose);
    $("transfer-form").addEventListener("submit", onTransfer);
    $("close-form").addEventListener("submit", onClose);
    wireDialog($("transfer-dialog"));
    wireDialog($("close-dialog"));
    $("composer").addEventListener("submit", (e) => {
      e.preventDefault();
      sendReply();
    });
    $("reply").addEventListener("keydown", onReplyKey);
    $("reply").addEventListener("input", onReplyInput);
    $("canned-q").addEventListener("input", onCannedInput);
    $("canned-q").addEventListener("keydown", onCannedKey);
    $("note-form").addEventListener("submit", onAddNote);
    $("note-text").addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) onAddNote(e);
    });
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && desk.conv) markRead(desk.conv);
    });
    setInterval(tick, 1000);
    let me = null;
    try {
      me = (await call("GET", "/me")).agent;
    } catch {
      me = null;
    }
    if (me) enterDesk(me);
    else showLogin();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init, { once: true });
  else init();
})();
