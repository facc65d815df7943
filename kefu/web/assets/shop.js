// The demo shop's own little script: "问客服" buttons ask the chat widget, "加入购物车" counts.
(() => {
  "use strict";
  document.addEventListener("click", (event) => {
    const target = event.target instanceof Element ? event.target.closest("[data-ask], [data-add]") : null;
    if (!target) return;
    if (target.hasAttribute("data-ask") && window.Kefu) {
      window.Kefu.send(target.getAttribute("data-ask"));
    } else if (target.hasAttribute("data-add")) {
      const count = document.getElementById("cart-count");
      count.textContent = String(Number(count.textContent) + 1);
      target.textContent = "已加入 ✓";
      setTimeout(() => (target.textContent = "加入购物车"), 1500);
    }
  });
})();
