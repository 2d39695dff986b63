// contactsync console: small conveniences over pages that work without JavaScript.
(function () {
  "use strict";

  // a select that submits its form when changed (its "Change"/"Choose" button stays for no-JS)
  document.querySelectorAll("form[data-autosubmit] select").forEach(function (select) {
    select.addEventListener("change", function () { select.form.requestSubmit(); });
  });
  document.querySelectorAll("select[data-autosubmit-action]").forEach(function (select) {
    select.addEventListener("change", function () {
      var button = select.form.querySelector('button[name="action"][value="' + select.dataset.autosubmitAction + '"]');
      select.form.requestSubmit(button || undefined);
    });
  });

  // confirm destructive actions
  document.querySelectorAll("[data-confirm]").forEach(function (button) {
    button.addEventListener("click", function (event) {
      if (!window.confirm(button.dataset.confirm)) { event.preventDefault(); }
    });
  });

  // the subscription panel's "+": clone the last row without a round trip
  document.querySelectorAll("[data-add-row]").forEach(function (button) {
    button.addEventListener("click", function (event) {
      var body = button.closest("tbody");
      var last = body.querySelector("tr[data-row]:last-of-type");
      if (!last) { return; }
      event.preventDefault();
      var index = body.querySelectorAll("tr[data-row]").length;
      var row = last.cloneNode(true);
      row.querySelectorAll("[name], [id], label[for]").forEach(function (el) {
        ["name", "id", "for"].forEach(function (attr) {
          var value = el.getAttribute(attr);
          if (value) { el.setAttribute(attr, value.replace(/(sub[.-])\d+/, "$1" + index)); }
        });
        if (el.tagName === "LABEL") { el.textContent = el.textContent.replace(/\d+\s*$/, String(index + 1)); }
        if (el.tagName === "INPUT") { el.value = ""; }
        if (el.tagName === "SELECT") { el.selectedIndex = 0; }
      });
      last.querySelector("td:last-child").removeChild(button);
      row.querySelector("td:last-child").appendChild(button);
      body.appendChild(row);
      row.querySelector("input, select").focus();
    });
  });

  // the subscription panel hides for aggregate nodes
  var node = document.querySelector("select[data-toggles]");
  if (node) {
    var panel = document.getElementById(node.dataset.toggles);
    var sync = function () {
      var kind = node.options[node.selectedIndex] && node.options[node.selectedIndex].dataset.kind;
      if (panel) { panel.hidden = kind === "aggregate"; }
    };
    node.addEventListener("change", sync);
    sync();
  }

  // live run progress: replace the counts with the fragment until the run ends
  var poll = function () {
    var box = document.querySelector("[data-poll]");
    if (!box) { return; }
    fetch(box.dataset.poll, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) { return response.ok ? response.text() : Promise.reject(response.status); })
      .then(function (html) {
        var holder = document.createElement("div");
        holder.innerHTML = html;
        var fresh = holder.querySelector("#run-counts");
        if (fresh) { box.replaceWith(fresh); }
        if (fresh && fresh.dataset.status === "running") { setTimeout(poll, 1000); }
      })
      .catch(function () { setTimeout(poll, 3000); });
  };
  if (document.querySelector("[data-poll]")) { setTimeout(poll, 1000); }
})();
