// The webmail's one script. Every page works without it; it adds keyboard shortcuts, drag
// to move, live updates (server-sent events from /events) and saving the compose form as a
// draft by itself. No inline script anywhere: the Content-Security-Policy allows scripts
// from this origin only.
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

// The compose form saves itself as a draft in the background: a few seconds after typing
// stops (at most every 30 s while it goes on) and when the page is hidden; never an
// untouched form, never two saves at once. Each save replaces the draft (a new UID; the
// old one is gone), so the form takes its new state from the answer: the draft to replace
// next time, and the attachments the new draft holds, which are then carried from it
// (chosen files are uploaded once, then listed as kept). Send waits for a save in flight,
// and no save starts after it. Without this script the form's buttons do the same by hand.
(function () {
  const form = document.getElementById("compose-form");
  const status = document.getElementById("autosave-status");
  if (!form || !status || !window.fetch || !window.FormData) return;
  const files = form.querySelector('input[type="file"][name="attachment"]');
  const QUIET_MS = 3000;
  const LONGEST_WAIT_MS = 30000;
  const RETRY_MS = 30000;
  // Browsers refuse a keepalive request (one that outlives the page) past 64 KiB.
  const KEEPALIVE_OCTETS_MAX = 60000;
  let edits = 0;        // changes made to the form so far
  let savedEdits = 0;   // how many of them the current draft holds
  let fileChoices = 0;  // times files were chosen in the file input
  let quietTimer = null;
  let longestTimer = null;
  let saving = false;
  let again = false;    // a save was asked for while one was in flight
  let waitingSubmit = null;  // a submit held back until the save in flight ends
  let leaving = false;  // the form was submitted: no save starts any more

  function say(text, failed) {
    status.textContent = text;
    status.classList.toggle("failed", Boolean(failed));
  }

  function clearTimers() {
    clearTimeout(quietTimer);
    clearTimeout(longestTimer);
    quietTimer = null;
    longestTimer = null;
  }

  function setHidden(name, value) {
    let input = form.querySelector('input[type="hidden"][name="' + name + '"]');
    if (value === null || value === undefined) {
      if (input) input.remove();
      return;
    }
    if (!input) {
      input = document.createElement("input");
      input.type = "hidden";
      input.name = name;
      form.prepend(input);
    }
    input.value = value;
  }

  // The attachments the saved draft holds, all kept: the list the user sees is exactly
  // what the next save and the send carry.
  function showKept(attachments) {
    const fieldset = files ? files.closest("fieldset") : null;
    if (!fieldset) return;
    const forwarded = fieldset.querySelector("p.forwarded");
    if (forwarded) forwarded.remove();
    let list = fieldset.querySelector("ul.kept-attachments");
    if (attachments.length === 0) {
      if (list) list.remove();
      return;
    }
    if (!list) {
      list = document.createElement("ul");
      list.className = "kept-attachments";
      fieldset.insertBefore(list, fieldset.querySelector('label[for="attachment"]'));
    }
    list.replaceChildren();
    attachments.forEach(function (attachment) {
      const item = document.createElement("li");
      const box = document.createElement("input");
      box.type = "checkbox";
      box.id = "keep-" + attachment.index;
      box.name = "keep_attachment";
      box.value = String(attachment.index);
      box.checked = true;
      const label = document.createElement("label");
      label.htmlFor = box.id;
      label.textContent = attachment.name + " — " + attachment.media_type + ", " + attachment.size;
      item.append(box, " ", label);
      list.append(item);
    });
  }

  function takeState(answer, choice) {
    setHidden("draft", answer.draft);
    // What was attached as a whole message is now one of the draft's attachments.
    setHidden("attached_message", null);
    setHidden("attachments_from", answer.attachments_from);
    showKept(answer.attachments);
    // Files chosen while the save was in flight were not in it: they stay chosen.
    if (files && choice === fileChoices) files.value = "";
  }

  function octetsOf(body) {
    let octets = 0;
    body.forEach(function (value) {
      octets += typeof value === "string" ? value.length * 3 : value.size;
    });
    return octets;
  }

  function Refused(status, reason) {
    this.status = status;
    this.reason = reason;
  }

  // Why a save failed, in words; and whether trying again by itself may help.
  function refusal(error) {
    if (!(error instanceof Refused)) {
      return { text: "the server cannot be reached; it is tried again.", retry: true };
    }
    switch (error.status) {
      case 401:
      case 403:
        return { text: "you are logged out. Log in again in another tab; what you typed stays here.", retry: true };
      case 413:
        return { text: "the attachments are larger than this site accepts. Remove some.", retry: false };
      case 507:
        return { text: "the mailbox is full. Delete some mail.", retry: false };
      case 503:
        return { text: "the mail store is unavailable; it is tried again.", retry: true };
      default:
        return { text: error.reason || "the server refused it (" + error.status + ").", retry: false };
    }
  }

  // A session logged in again (in another tab) has a new CSRF token: take it from a fresh
  // compose page, so the next save carries it.
  function refreshToken() {
    return fetch("/compose", { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : ""; })
      .then(function (text) {
        const page = new DOMParser().parseFromString(text, "text/html");
        const fresh = page.querySelector('#compose-form input[name="csrf"]');
        const mine = form.querySelector('input[name="csrf"]');
        if (!fresh || !mine || fresh.value === mine.value) return false;
        mine.value = fresh.value;
        return true;
      })
      .catch(function () { return false; });
  }

  function reasonOf(response) {
    return response.text().then(function (text) {
      const page = new DOMParser().parseFromString(text, "text/html");
      const explanation = page.querySelector("main.error-page p");
      throw new Refused(response.status, explanation ? explanation.textContent : "");
    }, function () { throw new Refused(response.status, ""); });
  }

  function save() {
    clearTimers();
    if (leaving || edits === savedEdits) return;
    if (saving) {
      again = true;
      return;
    }
    saving = true;
    again = false;
    const edition = edits;
    const choice = fileChoices;
    const body = new FormData(form);
    const options = {
      method: "POST",
      body: body,
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    };
    // A save as the page goes away may outlive it, if it is small enough to.
    if (document.visibilityState === "hidden" && octetsOf(body) < KEEPALIVE_OCTETS_MAX) {
      options.keepalive = true;
    }
    say("Saving…");
    fetch("/compose/draft", options)
      .then(function (response) {
        if (!response.ok) return reasonOf(response);
        return response.json();
      })
      .then(function (answer) {
        takeState(answer, choice);
        savedEdits = edition;
        const time = new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
        say("Draft saved at " + time);
      })
      .catch(function (error) {
        const why = refusal(error);
        say("Not saved: " + why.text, true);
        const retry = function (delay) {
          if (quietTimer === null) quietTimer = setTimeout(save, delay);
        };
        if (error instanceof Refused && error.status === 403) {
          return refreshToken().then(function (refreshed) {
            if (refreshed) retry(QUIET_MS); else retry(RETRY_MS);
          });
        }
        if (why.retry) retry(RETRY_MS);
      })
      .finally(function () {
        saving = false;
        if (waitingSubmit) {
          const submit = waitingSubmit;
          waitingSubmit = null;
          if (submit.button) form.requestSubmit(submit.button); else form.requestSubmit();
          return;
        }
        if (again) save();
      });
  }

  function edited() {
    if (leaving) return;
    edits += 1;
    clearTimeout(quietTimer);
    quietTimer = setTimeout(save, QUIET_MS);
    if (longestTimer === null) longestTimer = setTimeout(save, LONGEST_WAIT_MS);
  }

  form.addEventListener("input", edited);
  form.addEventListener("change", edited);
  if (files) files.addEventListener("change", function () { fileChoices += 1; });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") save();
  });
  // Sending wins: a save in flight ends first (its answer names the draft the send then
  // removes), and none starts after the form is submitted.
  form.addEventListener("submit", function (event) {
    if (saving) {
      event.preventDefault();
      waitingSubmit = { button: event.submitter || null };
      say("Finishing the save first…");
      return;
    }
    leaving = true;
    clearTimers();
  });
  // Back to this page from the history: it may save again.
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) leaving = false;
  });
})();
