// Documentos, staff side: a drop zone on the upload forms, and one request per file with a
// progress bar each (XMLHttpRequest: fetch has no upload progress). Without this script the forms
// post every file at once and the page answers with the result. No inline scripts (CSP).
(function () {
  "use strict";

  var PARALLEL = 3;

  function text(el, value) { el.textContent = value; return el; }

  function fileRow(list, file) {
    var li = document.createElement("li");
    var name = text(document.createElement("strong"), file.name);
    var bar = document.createElement("progress");
    bar.max = 100; bar.value = 0;
    bar.setAttribute("aria-label", file.name);
    var message = document.createElement("span");
    message.className = "upload-message";
    li.appendChild(name); li.appendChild(bar); li.appendChild(message);
    list.appendChild(li);
    return { li: li, bar: bar, message: message };
  }

  function finish(row, status, message) {
    row.li.className = "upload-" + status;
    row.li.setAttribute("data-status", status);
    row.bar.value = 100;
    text(row.message, message);
  }

  function send(form, file, row, done) {
    var data = new FormData();
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!el.name || el.type === "file" || el.disabled) { return; }
      if ((el.type === "checkbox" || el.type === "radio") && !el.checked) { return; }
      data.append(el.name, el.value);
    });
    data.append("arquivos", file, file.name);
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("X-Requested-With", "XMLHttpRequest");
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", function (ev) {
      if (ev.lengthComputable) { row.bar.value = Math.round(ev.loaded * 99 / ev.total); }
    });
    xhr.addEventListener("load", function () {
      var answer = null;
      try { answer = JSON.parse(xhr.responseText); } catch (e) { answer = null; }
      if (answer && answer.status) {
        var message = answer.message || "";
        if (answer.errors) {
          message = Object.keys(answer.errors).map(function (k) { return answer.errors[k].join(" "); }).join(" ");
        }
        finish(row, answer.status, message);
        done(answer);
      } else {
        finish(row, "refused", form.getAttribute("data-failed") || ("HTTP " + xhr.status));
        done({ status: "refused" });
      }
    });
    xhr.addEventListener("error", function () {
      finish(row, "refused", form.getAttribute("data-failed") || "");
      done({ status: "refused" });
    });
    xhr.send(data);
  }

  function upload(form, files) {
    var list = form.querySelector("[data-upload-list]");
    var limit = parseInt(form.getAttribute("data-max-bytes"), 10) || 0;
    var queue = [], reviewUrl = null, received = 0, stop = false;
    Array.prototype.forEach.call(files, function (file) {
      var row = fileRow(list, file);
      if (limit && file.size > limit) {
        finish(row, "refused", form.getAttribute("data-too-large"));
      } else {
        queue.push([file, row]);
      }
    });
    var active = 0, finished = false;
    function settle() {
      if (finished || active || (!stop && queue.length)) { return; }
      finished = true;
      if (form.getAttribute("data-upload") === "distribute" && reviewUrl && received) {
        if (!list.querySelector("[data-status=refused]")) { window.location.assign(reviewUrl); return; }
        var li = document.createElement("li"), link = document.createElement("a");  // read the refusals first
        link.href = reviewUrl;
        text(link, form.getAttribute("data-review-label") || reviewUrl);
        li.appendChild(link);
        list.appendChild(li);
        link.focus();
      } else if (received) {
        list.setAttribute("data-finished", "1");
        var item = document.createElement("li"), again = document.createElement("a");
        again.href = window.location.href;
        text(again, form.getAttribute("data-refresh-label") || window.location.href);
        item.appendChild(again);
        list.appendChild(item);
      }
    }
    function pump() {  // up to PARALLEL requests at once: the server reads one file while storing another
      while (!stop && active < PARALLEL && queue.length) {
        var item = queue.shift();
        active += 1;
        send(form, item[0], item[1], function (answer) {
          active -= 1;
          if (answer.review_url) { reviewUrl = answer.review_url; }
          if (answer.status === "published" || answer.status === "received") { received += 1; }
          if (answer.status === "invalid" || answer.status === "unavailable") {
            stop = true;
            queue.forEach(function (rest) { finish(rest[1], answer.status, answer.message || ""); });
            queue = [];
          }
          pump();
        });
      }
      settle();
    }
    pump();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-upload]").forEach(function (form) {
      if (!window.FormData || !window.XMLHttpRequest) { return; }
      var input = form.querySelector("input[type=file]");
      form.addEventListener("submit", function (ev) {
        if (!input.files || !input.files.length) { return; }  // the server says what is missing
        ev.preventDefault();
        upload(form, input.files);
        input.value = "";
      });
      var zone = form.querySelector("[data-drop-zone]");
      if (!zone) { return; }
      ["dragenter", "dragover"].forEach(function (name) {
        zone.addEventListener(name, function (ev) { ev.preventDefault(); zone.classList.add("dragging"); });
      });
      ["dragleave", "drop"].forEach(function (name) {
        zone.addEventListener(name, function (ev) { ev.preventDefault(); zone.classList.remove("dragging"); });
      });
      zone.addEventListener("drop", function (ev) {
        if (ev.dataTransfer && ev.dataTransfer.files && ev.dataTransfer.files.length) {
          upload(form, ev.dataTransfer.files);
        }
      });
    });
  });
})();
