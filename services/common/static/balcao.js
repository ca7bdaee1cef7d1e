// Small progressive enhancements; every page works without them. No inline scripts (CSP).
document.addEventListener("DOMContentLoaded", function () {
  // A <select data-autosubmit> (the firm selector) submits its form when changed.
  document.querySelectorAll("select[data-autosubmit]").forEach(function (sel) {
    sel.addEventListener("change", function () { sel.form.submit(); });
  });
  // <button data-dialog-open="ID"> opens <dialog id="ID">.
  document.querySelectorAll("[data-dialog-open]").forEach(function (btn) {
    btn.addEventListener("click", function () {
      var dlg = document.getElementById(btn.getAttribute("data-dialog-open"));
      if (dlg && dlg.showModal) { dlg.showModal(); }
    });
  });
  // <button data-dialog-choice="VALUE" data-target="INPUT_ID"> inside a dialog sets the input and closes.
  document.querySelectorAll("[data-dialog-choice]").forEach(function (btn) {
    btn.addEventListener("click", function (ev) {
      ev.preventDefault();
      var input = document.getElementById(btn.getAttribute("data-target"));
      if (input) { input.value = btn.getAttribute("data-dialog-choice"); input.dispatchEvent(new Event("change")); }
      var dlg = btn.closest("dialog");
      if (dlg) { dlg.close(); }
      var label = document.getElementById(btn.getAttribute("data-target") + "-label");
      if (label) { label.textContent = btn.getAttribute("data-label") || ""; }
    });
  });
  // <button data-copy="TEXT"> copies TEXT to the clipboard.
  document.querySelectorAll("[data-copy]").forEach(function (btn) {
    btn.addEventListener("click", function () {
      if (navigator.clipboard) {
        navigator.clipboard.writeText(btn.getAttribute("data-copy")).then(function () {
          btn.setAttribute("data-copied", "1");
        });
      }
    });
  });
});
