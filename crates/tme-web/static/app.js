// The webmail's one script. Every page works without it; it adds keyboard shortcuts, drag
// to move and live updates (server-sent events from /events). No inline script anywhere:
// the Content-Security-Policy allows scripts from this origin only.
"use strict";

(function () {
  const list = document.getElementById("message-list-form");
  const rows = list ? Array.from(list.querySelectorAll("tr[data-uid]")) : [];
  let cursor = -1;

  function typing(target) {
    return target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
  }

  function checkbox(row) {
    // A message's box, or a conversation's in the conversation view.
    return row.querySelector('input[type="checkbox"][name="uid"], input[type="checkbox"][name="thread"]');
  }

  function markSelected(row) {
    row.classList.toggle("selected", checkbox(row).checked);
  }

  function moveCursor(step) {
    if (rows.length === 0) return;
    cursor = Math.max(0, Math.min(rows.length - 1, cursor + step));
    const link = rows[cursor].querySelector("td.subject a");
    if (link) link.focus();
  }

  rows.forEach(function (row, index) {
    const box = checkbox(row);
    box.addEventListener("change", function () { markSelected(row); });
    row.addEventListener("focusin", function () { cursor = index; });
    // Drag a row (or the selected rows) onto a folder to move it there.
    row.draggable = true;
    row.addEventListener("dragstart", function (event) {
      if (!box.checked) {
        rows.forEach(function (other) { checkbox(other).checked = false; markSelected(other); });
        box.checked = true;
        markSelected(row);
      }
      event.dataTransfer.setData("text/plain", row.dataset.uid);
      event.dataTransfer.effectAllowed = "move";
    });
  });

  if (list) {
    document.querySelectorAll("nav.folders a[data-mailbox]").forEach(function (folder) {
      folder.addEventListener("dragover", function (event) {
        event.preventDefault();
        folder.classList.add("drop-target");
      });
      folder.addEventListener("dragleave", function () { folder.classList.remove("drop-target"); });
      folder.addEventListener("drop", function (event) {
        event.preventDefault();
        folder.classList.remove("drop-target");
        const target = list.querySelector('select[name="target"]');
        const move = list.querySelector('button[name="action"][value="move"]');
        if (!target || !move) return;
        if (!Array.from(target.options).some(function (option) { return option.value === folder.dataset.mailbox; })) return;
        target.value = folder.dataset.mailbox;
        list.requestSubmit(move);
      });
    });
  }

  // Shortcuts: j/k next/previous message, x select, o or Enter open, # delete, e archive,
  // c compose, / search, u back to the folder; buttons and links marked data-key="KEY".
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    const key = event.key;
    if (key === "j") { moveCursor(1); event.preventDefault(); return; }
    if (key === "k") { moveCursor(-1); event.preventDefault(); return; }
    if (key === "x" && cursor >= 0) {
      const box = checkbox(rows[cursor]);
      box.checked = !box.checked;
      markSelected(rows[cursor]);
      event.preventDefault();
      return;
    }
    if (key === "o" && cursor >= 0) {
      const link = rows[cursor].querySelector("td.subject a");
      if (link) link.click();
      return;
    }
    if ((key === "#" || key === "e") && list && cursor >= 0 &&
        !rows.some(function (row) { return checkbox(row).checked; })) {
      checkbox(rows[cursor]).checked = true;
    }
    if (key === "c") { window.location.href = "/compose"; return; }
    if (key === "/") { window.location.href = "/search"; event.preventDefault(); return; }
    if (key === "u") {
      const back = document.querySelector("a[data-key='u']");
      if (back) back.click();
      return;
    }
    const marked = document.querySelector('[data-key="' + CSS.escape(key) + '"]');
    if (marked) { marked.click(); event.preventDefault(); }
  });

  // Live updates: unread counts follow the account; new mail in the folder shown appears.
  if (!window.EventSource || !document.querySelector("nav.folders")) return;
  const shown = document.querySelector("main[data-mailbox]");
  let known = null;
  const source = new EventSource("/events");
  source.addEventListener("folders", function (message) {
    const folders = JSON.parse(message.data).folders;
    folders.forEach(function (folder) {
      const link = document.querySelector('nav.folders a[data-mailbox="' + folder.id + '"]');
      if (!link) return;
      let count = link.querySelector(".unread-count");
      if (folder.unseen > 0) {
        if (!count) {
          link.append(" ");
          count = document.createElement("span");
          count.className = "unread-count";
          link.append(count);
        }
        count.textContent = "(" + folder.unseen + ")";
      } else if (count) {
        count.remove();
      }
    });
    if (!shown) return;
    const current = folders.find(function (folder) { return String(folder.id) === shown.dataset.mailbox; });
    if (!current) return;
    if (known !== null && current.uid_next !== known) {
      const untouched = !rows.some(function (row) { return checkbox(row).checked; });
      if (untouched && shown.dataset.firstPage === "true") {
        window.location.reload();
        return;
      }
      let notice = document.getElementById("new-mail");
      if (!notice) {
        notice = document.createElement("p");
        notice.id = "new-mail";
        notice.className = "notice";
        notice.setAttribute("role", "status");
        const link = document.createElement("a");
        link.href = "/mail/" + shown.dataset.mailbox;
        link.textContent = "New mail arrived: show it";
        notice.append(link);
        shown.prepend(notice);
      }
    }
    known = current.uid_next;
    document.body.dataset.live = "ready";
  });
})();
