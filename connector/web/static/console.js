// The console's only script (no library): refresh [data-poll] regions in place, "select all" boxes,
// and copy buttons. Every page works without it; it only saves reloads and typing.
(function () {
  "use strict";

  function checkedValues(root) {
    return Array.prototype.map.call(root.querySelectorAll("input[type=checkbox]:checked"), function (box) {
      return box.name + "=" + box.value;
    });
  }

  function poll(region) {
    var url = region.getAttribute("data-poll");
    var every = parseInt(region.getAttribute("data-interval") || "5000", 10);
    function tick() {
      if (document.visibilityState !== "visible") { return schedule(); }
      fetch(url, { headers: { "X-Console-Fragment": "1" }, credentials: "same-origin", cache: "no-store" })
        .then(function (answer) {
          if (answer.status === 401) { window.location.reload(); }  // the session ended: back to sign-in
          return answer.ok ? answer.text() : Promise.reject(answer.status);
        })
        .then(function (html) {
          var kept = checkedValues(region);
          region.innerHTML = html;
          kept.forEach(function (key) {
            var parts = key.split("=");
            var box = region.querySelector("input[type=checkbox][name='" + parts[0] + "'][value='" + parts[1] + "']");
            if (box) { box.checked = true; }
          });
          region.setAttribute("data-refreshed", String(Date.now()));
        })
        .catch(function () { /* keep the last figures; try again on the next tick */ })
        .then(function () {
          if (!region.querySelector("[data-poll-stop]")) { schedule(); }  // e.g. the event is finished
        });
    }
    function schedule() { window.setTimeout(tick, every); }
    schedule();
  }

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("[data-poll]"), poll);
  });

  document.addEventListener("change", function (event) {
    var box = event.target;
    var name = box && box.getAttribute && box.getAttribute("data-select-all");
    if (!name) { return; }
    var form = box.closest("form") || document;
    Array.prototype.forEach.call(form.querySelectorAll("input[type=checkbox][name='" + name + "']"), function (b) {
      b.checked = box.checked;
    });
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-copy]") : null;
    if (!button) { return; }
    var source = document.querySelector(button.getAttribute("data-copy"));
    if (!source || !navigator.clipboard) { return; }
    navigator.clipboard.writeText(source.textContent.trim()).then(function () {
      button.textContent = "Copied";
      window.setTimeout(function () { button.textContent = "Copy"; }, 1500);
    });
  });
})();
