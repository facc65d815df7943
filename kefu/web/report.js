// The report page: GET /v1/admin/report with the API key the user pasted (kept in this tab's sessionStorage),
// charts as inline SVG, and "add FAQ entry" posting to /v1/admin/kb/entries. No inline code (strict CSP).
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";
  const COLORS = ["#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#14b8a6", "#64748b", "#ec4899"];

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function headers() {
    return { Authorization: "Bearer " + $("key").value.trim(), "Content-Type": "application/json" };
  }
  async function api(path, options) {
    const response = await fetch(path, Object.assign({ headers: headers() }, options || {}));
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const message = (body.error && body.error.message) || response.statusText;
      throw new Error(response.status + ": " + message);
    }
    return body;
  }

  // Horizontal bars: one row per [label, value].
  function bars(target, pairs) {
    target.replaceChildren();
    const max = Math.max(1, ...pairs.map((p) => p[1]));
    const row = 22, width = 480, left = 130;
    const chart = svg("svg", { viewBox: `0 0 ${width} ${Math.max(1, pairs.length) * row + 4}`, role: "img" });
    pairs.forEach(([label, value], i) => {
      const w = ((width - left - 50) * value) / max;
      chart.append(svg("text", { x: 0, y: i * row + 15 }, label));
      chart.append(svg("rect", { x: left, y: i * row + 4, width: Math.max(w, 1), height: 14, fill: COLORS[i % COLORS.length] }));
      chart.append(svg("text", { x: left + w + 4, y: i * row + 15 }, String(value)));
    });
    if (!pairs.length) chart.append(svg("text", { x: 0, y: 15 }, "—"));
    target.append(chart);
  }

  // Stacked columns per day: deflected (blue) + handed off (amber).
  function perDay(target, days) {
    target.replaceChildren();
    const height = 160, col = Math.max(8, Math.min(40, 640 / Math.max(1, days.length)));
    const width = days.length * col + 40;
    const max = Math.max(1, ...days.map((d) => d.conversations));
    const chart = svg("svg", { viewBox: `0 0 ${width} ${height + 30}`, role: "img" });
    days.forEach((d, i) => {
      const x = 30 + i * col;
      const hDef = (height * d.deflected) / max, hHand = (height * d.handed_off) / max;
      chart.append(svg("rect", { x, y: height - hDef, width: col - 3, height: hDef, fill: COLORS[0] }));
      chart.append(svg("rect", { x, y: height - hDef - hHand, width: col - 3, height: hHand, fill: COLORS[1] }));
      const label = svg("text", { x, y: height + 14 }, d.date.slice(5));
      chart.append(label);
      chart.append(svg("title", {}, `${d.date}: ${d.conversations} (${d.handed_off} 转人工)`));
    });
    chart.append(svg("text", { x: 0, y: 10 }, String(max)));
    chart.append(svg("text", { x: 30, y: height + 28 }, "■ 机器人解决 deflected   ■ 转人工 handed off"));
    target.append(chart);
  }

  function card(label, value, note) {
    const node = el("div", { class: "card" });
    node.append(el("small", {}, label), el("b", {}, value));
    if (note) node.append(el("small", {}, note));
    return node;
  }
  const pct = (v) => (v === null || v === undefined ? "—" : Math.round(v * 100) + "%");

  function render(report) {
    const c = report.conversations, csat = report.csat;
    const cards = $("cards");
    cards.replaceChildren(
      card("会话 Conversations", String(c.total)),
      card("机器人解决率 Deflection", pct(c.deflection_rate), `${c.deflected} / ${c.total}`),
      card("转人工 Handed off", String(c.handed_off)),
      card("满意度 CSAT", csat.average === null ? "—" : String(csat.average), `${csat.rated} 条评价 rated`),
      card("没答上 Unanswered", String(report.unanswered.total))
    );
    if (report.cost) {
      for (const line of report.cost.by_currency) {
        cards.append(card("每会话成本 Cost / conversation", `${line.per_conversation} ${line.currency}`, `total ${line.total}`));
      }
    } else {
      cards.append(card("成本 Cost", "—", "no usage ledger"));
    }
    perDay($("per-day"), c.per_day);
    bars($("reasons"), Object.entries(report.handoffs.by_reason));
    bars($("sources"), Object.entries(report.answers.by_source));
    const body = $("unanswered").tBodies[0];
    body.replaceChildren();
    for (const g of report.unanswered.groups) {
      const tr = el("tr");
      const faq = g.nearest_faq ? `${g.nearest_faq.question} (${g.nearest_faq.score})` : "—";
      const action = el("td");
      if (g.answered_now) {
        action.append(el("span", { class: "ok" }, "✓ 已能回答 answered now"));
      } else {
        const button = el("button", { type: "button", class: "add-faq" }, "添加 FAQ · Add FAQ");
        button.addEventListener("click", () => openFaq(g));
        action.append(button);
      }
      tr.append(el("td", {}, String(g.count)), el("td", { class: "question" }, g.question),
        el("td", {}, g.examples.join(" / ")), el("td", {}, faq), action);
      body.append(tr);
    }
    $("report").hidden = false;
  }

  async function load(event) {
    if (event) event.preventDefault();
    sessionStorage.setItem("kefu-report-key", $("key").value.trim());
    const params = new URLSearchParams({ top: $("top").value || "10" });
    if ($("since").value) params.set("since", $("since").value);
    if ($("until").value) params.set("until", $("until").value);
    $("status").textContent = "";
    try {
      render(await api("/v1/admin/report?" + params.toString()));
    } catch (error) {
      $("status").textContent = error.message;
    }
  }

  function openFaq(group) {
    $("faq-question").value = group.question;
    $("faq-similar").value = group.examples.filter((e) => e !== group.question).join("\n");
    $("faq-answer").value = "";
    $("faq-error").textContent = "";
    $("faq-dialog").showModal();
    $("faq-answer").focus();
  }

  async function saveFaq(event) {
    event.preventDefault();
    const entry = {
      question: $("faq-question").value.trim(),
      answer: $("faq-answer").value.trim(),
      similar_questions: $("faq-similar").value.split("\n").map((s) => s.trim()).filter(Boolean),
    };
    try {
      await api("/v1/admin/kb/entries", { method: "POST", body: JSON.stringify(entry) });
      $("faq-dialog").close();
      await load();
    } catch (error) {
      $("faq-error").textContent = error.message;
    }
  }

  $("controls").addEventListener("submit", load);
  $("faq-form").addEventListener("submit", saveFaq);
  $("faq-cancel").addEventListener("click", () => $("faq-dialog").close());
  $("key").value = sessionStorage.getItem("kefu-report-key") || "";
  const yesterday = new Date(Date.now() - 86400000).toISOString().slice(0, 10);
  $("since").value = $("since").value || yesterday;
  $("until").value = $("until").value || yesterday;
})();
