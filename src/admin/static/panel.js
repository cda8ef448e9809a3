// FlexiProxy panel: small enhancements over server-rendered pages. Every form works without
// this script; it adds copy buttons, the provider presets, the Test button, the delete
// confirmation and closing the ⚙ menus. No inline handlers (the page's CSP forbids them).
(function () {
  "use strict";

  var body = document.body;
  var text = function (name) { return body.getAttribute("data-" + name) || ""; };

  // Copy buttons: data-copy names the element whose text is copied.
  function fallbackCopy(value) {
    var area = document.createElement("textarea");
    area.value = value;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    document.body.removeChild(area);
    return ok;
  }

  function flash(button, label) {
    var before = button.getAttribute("data-label") || button.textContent;
    button.setAttribute("data-label", before);
    button.textContent = label;
    button.classList.add("done");
    setTimeout(function () {
      button.textContent = before;
      button.classList.remove("done");
    }, 1500);
  }

  function copy(button) {
    var target = document.getElementById(button.getAttribute("data-copy"));
    if (!target) { return; }
    var value = target.textContent;
    var done = function () { flash(button, text("copied")); };
    var failed = function () {
      if (fallbackCopy(value)) { done(); return; }
      var range = document.createRange();
      range.selectNodeContents(target);
      var sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      flash(button, text("copy-failed"));
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(value).then(done, failed);
    } else {
      failed();
    }
  }

  // The Test button: POSTs with the CSRF header and shows status, latency and error.
  function runTest(button) {
    var out = document.getElementById(button.getAttribute("data-result"));
    var token = document.querySelector('meta[name="csrf-token"]');
    if (out) {
      out.className = "test-result";
      out.textContent = text("testing");
      var row = out.closest("tr.test-row");
      if (row) { row.hidden = false; }
    }
    button.disabled = true;
    fetch(button.getAttribute("data-test"), {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRF-Token": token ? token.content : "" }
    }).then(function (r) {
      return r.json().catch(function () { return { ok: false, error: "HTTP " + r.status }; });
    }).then(function (res) {
      if (!out) { return; }
      var parts = [res.ok ? "✓ " + text("test-ok") : "✗ " + text("test-failed")];
      if (res.status) { parts.push("HTTP " + res.status); }
      if (typeof res.latency_ms === "number") { parts.push(res.latency_ms + " ms"); }
      if (res.error) { parts.push(res.error); }
      out.textContent = parts.join(" · ");
      out.className = "test-result " + (res.ok ? "ok" : "fail");
      out.setAttribute("data-done", res.ok ? "ok" : "fail");
    }, function (err) {
      if (out) {
        out.textContent = "✗ " + err;
        out.className = "test-result fail";
        out.setAttribute("data-done", "fail");
      }
    }).then(function () {
      button.disabled = false;
      var menu = button.closest("details");
      if (menu) { menu.open = false; }
    });
  }

  document.addEventListener("click", function (e) {
    var el = e.target.closest ? e.target : e.target.parentElement;
    var c = el.closest("[data-copy]");
    if (c) { e.preventDefault(); copy(c); return; }
    var t = el.closest("[data-test]");
    if (t) { e.preventDefault(); runTest(t); return; }
    // A click outside an open ⚙ menu closes it.
    document.querySelectorAll("details.menu[open]").forEach(function (d) {
      if (!d.contains(el)) { d.open = false; }
    });
  });

  // One ⚙ menu open at a time.
  document.querySelectorAll("details.menu").forEach(function (d) {
    d.addEventListener("toggle", function () {
      if (!d.open) { return; }
      document.querySelectorAll("details.menu[open]").forEach(function (o) {
        if (o !== d) { o.open = false; }
      });
    });
  });

  document.addEventListener("keydown", function (e) {
    if (e.key === "Escape") {
      document.querySelectorAll("details.menu[open]").forEach(function (d) { d.open = false; });
    }
  });

  // A key shown once stays shown once: leaving the page wipes it, so the back/forward cache
  // keeps no copy (Chromium and Firefox restore pages despite no-store), and a page restored
  // from that cache is loaded again, which the server answers with "shown once". Password
  // fields are emptied too, so Back never brings back a provider key typed into a form.
  var hadSecret = !!document.querySelector("[data-once]");
  window.addEventListener("pagehide", function () {
    document.querySelectorAll("[data-once]").forEach(function (el) { el.remove(); });
    var gone = document.getElementById("key-gone-later");
    if (gone) { gone.hidden = false; }
    document.querySelectorAll("input[type=password]").forEach(function (el) { el.value = ""; });
  });
  window.addEventListener("pageshow", function (e) {
    if (e.persisted && hadSecret) { window.location.reload(); }
  });
  // The language switch reloads the page: on a page holding a key it asks first.
  document.addEventListener("click", function (e) {
    var warning = text("leave-warning");
    var link = e.target.closest ? e.target.closest("#lang-switch") : null;
    if (warning && link && document.querySelector("[data-once]") && !window.confirm(warning)) {
      e.preventDefault();
    }
  }, true);

  // Delete asks first (the server also wants confirm=yes).
  document.addEventListener("submit", function (e) {
    var question = e.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { e.preventDefault(); }
  });

  // Provider presets fill the base URL and the protocol; "custom" lets you type them. Every
  // form with a preset list has its own (the create form, each route's form).
  function presetForm(preset) {
    var form = preset.form;
    var baseUrl = form && form.querySelector('[name="base_url"]');
    var protocol = form && form.querySelector('[name="protocol"]');
    var model = form && form.querySelector('[name="model"]');
    if (!baseUrl || !protocol) { return; }
    function apply(initial) {
      var opt = preset.options[preset.selectedIndex];
      var url = opt.getAttribute("data-base-url");
      var custom = !url;
      if (!custom) {
        baseUrl.value = url;
        protocol.value = opt.getAttribute("data-protocol");
        if (model && opt.getAttribute("data-model")) {
          model.placeholder = opt.getAttribute("data-model");
        }
      } else if (!initial && baseUrl.readOnly) {
        baseUrl.value = "";
      }
      baseUrl.readOnly = !custom;
      baseUrl.required = custom;
    }
    preset.addEventListener("change", function () { apply(false); });
    apply(true);
  }
  document.querySelectorAll('select[name="preset"]').forEach(presetForm);
})();
