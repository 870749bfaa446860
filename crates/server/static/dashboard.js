// Keyplane dashboard: small enhancements. Every page works without this script.
(function () {
  "use strict";
  var csrf = document.querySelector('meta[name="csrf-token"]');

  // Confirm before destructive forms.
  document.addEventListener("submit", function (e) {
    var form = e.target;
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      e.preventDefault();
    }
  }, true);

  // Copy buttons: data-copy="#input-id".
  document.addEventListener("click", function (e) {
    var button = e.target.closest("[data-copy]");
    if (!button) return;
    var input = document.querySelector(button.getAttribute("data-copy"));
    if (!input) return;
    input.select();
    var done = function () { button.textContent = "Copied"; };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(done, function () { document.execCommand("copy"); done(); });
    } else {
      document.execCommand("copy");
      done();
    }
  });

  // Selects that submit their form (project switcher, role changes).
  document.addEventListener("change", function (e) {
    var select = e.target;
    if (select.matches && select.matches("select[data-autosubmit]") && select.value) {
      if (select.form.requestSubmit) select.form.requestSubmit(); else select.form.submit();
    }
    if (select.matches && select.matches("[data-restricted-toggle]")) toggleRestricted(select.form);
  });

  function toggleRestricted(form) {
    if (!form) return;
    var table = form.querySelector("[data-restricted]");
    var chosen = form.querySelector('input[name="permissions"]:checked');
    if (table) table.hidden = !(chosen && chosen.value === "restricted");
  }
  document.querySelectorAll("form").forEach(toggleRestricted);

  // Narrow screens: the sidebar opens from the menu button.
  var toggle = document.querySelector(".menu-toggle");
  var sidebar = document.getElementById("sidebar");
  if (toggle && sidebar) {
    toggle.addEventListener("click", function () {
      var open = sidebar.classList.toggle("open");
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
    });
  }

  // htmx-style helper: Keyplane.post(url, data) sends the session's CSRF token as a header.
  window.Keyplane = {
    post: function (url, data) {
      return fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: {
          "content-type": "application/x-www-form-urlencoded",
          "x-csrf-token": csrf ? csrf.content : ""
        },
        body: new URLSearchParams(data || {}).toString()
      });
    }
  };
})();
