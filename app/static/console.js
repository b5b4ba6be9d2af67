/* The console's few behaviours, kept out of the pages so that the CSP forbids inline script:
   confirm before a destructive form, submit a filter when its select changes, and follow a
   poster batch's progress. Everything works without it (a button, or a page reload). */
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    var message = event.target.getAttribute && event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) event.preventDefault();
  });
  document.addEventListener("change", function (event) {
    var field = event.target;
    if (field.hasAttribute && field.hasAttribute("data-autosubmit") && field.form) field.form.submit();
  });

  var box = document.getElementById("batch");
  if (!box || !box.dataset.statusUrl) return;
  var bar = document.getElementById("batch-progress"), text = document.getElementById("batch-text"),
      link = document.getElementById("batch-download");
  function poll() {
    fetch(box.dataset.statusUrl, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { return r.json(); })
      .then(function (s) {
        if (s.total) { bar.max = s.total; bar.value = s.done; }
        if (s.status === "finished") {
          bar.max = 1; bar.value = 1; text.textContent = "已完成";
          link.href = s.download_url; link.hidden = false; return;
        }
        if (s.status === "failed" || s.error) { text.textContent = s.error || s.message || "生成失败"; return; }
        text.textContent = s.total ? ("已生成 " + s.done + " / " + s.total) : "排队中…";
        setTimeout(poll, 700);
      })
      .catch(function () { setTimeout(poll, 2000); });
  }
  poll();
})();
