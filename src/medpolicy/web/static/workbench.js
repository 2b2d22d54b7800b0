// medpolicy reviewer workbench: a light touch of JavaScript. Every page works without it.
(function () {
  "use strict";
  // Queue filters: apply a changed select at once (the Apply button stays for keyboard users).
  document.querySelectorAll("form[data-autosubmit] select").forEach(function (el) {
    el.addEventListener("change", function () { el.form.requestSubmit ? el.form.requestSubmit() : el.form.submit(); });
  });
  // A form sent once stays sent: no double approvals from a double click.
  document.querySelectorAll("form[method=post]").forEach(function (form) {
    form.addEventListener("submit", function () {
      window.setTimeout(function () {
        form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = true; });
      }, 0);
    });
  });
  // Missing facts: say what the policy would answer with the answers given so far (nothing is
  // recorded until the reviewer presses the button).
  var answers = document.querySelector("form[data-preview]");
  var preview = document.getElementById("preview");
  if (answers && preview && window.fetch) {
    var timer = null;
    var ask = function () {
      var data = new FormData(answers);
      var given = false;
      data.forEach(function (value, key) { if (key.indexOf("fact_") === 0 && value) { given = true; } });
      if (!given) { preview.textContent = ""; return; }
      fetch(answers.getAttribute("data-preview"), { method: "POST", body: data, credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (j) {
          if (!j) { return; }
          if (j.errors && j.errors.length) { preview.textContent = "Not valid yet: " + j.errors.join("; "); return; }
          var text = "With these answers the policy\u2019s answer would be: " + j.label + ".";
          if (j.still_needed && j.still_needed.length) { text += " Still needed: " + j.still_needed.join(" "); }
          preview.textContent = text;
        })
        .catch(function () { preview.textContent = ""; });
    };
    answers.addEventListener("change", ask);
    answers.addEventListener("input", function () { window.clearTimeout(timer); timer = window.setTimeout(ask, 400); });
  }
  // Move focus to a message after a page load, so screen-reader and keyboard users hear it first.
  var message = document.querySelector("[data-focus-on-load]");
  if (message) { message.setAttribute("tabindex", "-1"); message.focus(); }
})();
