// Webmail's only script, and an optional one: every page works without it. It adds
// keyboard shortcuts, selection and drag-to-folder, new mail without reloading, draft
// autosave, address suggestions, and a message frame as tall as its content.
"use strict";

(function () {
  const body = document.body;
  const $ = (selector, root) => (root || document).querySelector(selector);
  const $$ = (selector, root) => Array.from((root || document).querySelectorAll(selector));
  const csrf = () => { const input = $("input[name=csrfmiddlewaretoken]"); return input ? input.value : ""; };

  // Confirmations --------------------------------------------------------------------------
  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-confirm]");
    if (button && !window.confirm(button.dataset.confirm)) event.preventDefault();
  });
  document.addEventListener("submit", (event) => {
    const message = event.target.dataset.confirm;
    if (message && !window.confirm(message)) event.preventDefault();
  });

  // The message list: selection, keyboard, drag to a folder --------------------------------
  const list = $("#wm-list");
  const listForm = $("#wm-list-form");
  const rows = () => (list ? $$("tr.wm-row", list) : []);
  let current = -1;

  function markSelected(row) {
    const box = $("input[type=checkbox]", row);
    row.classList.toggle("selected", Boolean(box && box.checked));
  }

  function setCurrent(index) {
    const all = rows();
    if (!all.length) return;
    current = Math.max(0, Math.min(index, all.length - 1));
    all.forEach((row, i) => row.classList.toggle("current", i === current));
    all[current].scrollIntoView({ block: "nearest" });
  }

  if (list) {
    list.addEventListener("change", (event) => {
      const row = event.target.closest("tr.wm-row");
      if (row) markSelected(row);
    });
    const all = $("#wm-all");
    if (all) {
      all.addEventListener("change", () => {
        rows().forEach((row) => { $("input[type=checkbox]", row).checked = all.checked; markSelected(row); });
      });
    }
    list.addEventListener("dragstart", (event) => {
      const row = event.target.closest("tr.wm-row");
      if (!row) return;
      const box = $("input[type=checkbox]", row);
      if (box && !box.checked) {
        rows().forEach((r) => { $("input[type=checkbox]", r).checked = false; markSelected(r); });
        box.checked = true;
        markSelected(row);
      }
      row.classList.add("dragging");
      event.dataTransfer.effectAllowed = "move";
      event.dataTransfer.setData("text/plain", row.dataset.uid);
    });
    list.addEventListener("dragend", (event) => {
      const row = event.target.closest("tr.wm-row");
      if (row) row.classList.remove("dragging");
    });
  }

  if (listForm) {
    $$(".wm-folder[data-folder-id]").forEach((link) => {
      if (link.getAttribute("aria-current") === "page") return;
      link.addEventListener("dragover", (event) => { event.preventDefault(); link.classList.add("drop"); });
      link.addEventListener("dragleave", () => link.classList.remove("drop"));
      link.addEventListener("drop", (event) => {
        event.preventDefault();
        link.classList.remove("drop");
        submitAction("move", link.dataset.folderId);
      });
    });
  }

  function submitAction(action, target) {
    if (!listForm) return;
    const chosen = rows().filter((row) => $("input[type=checkbox]", row).checked);
    if (!chosen.length && current >= 0) $("input[type=checkbox]", rows()[current]).checked = true;
    const hidden = document.createElement("input");
    hidden.type = "hidden"; hidden.name = "action"; hidden.value = action;
    listForm.appendChild(hidden);
    if (target) { const select = $("select[name=target]", listForm); if (select) select.value = target; }
    listForm.submit();
  }

  // The message frame: as tall as its content ---------------------------------------------
  // The frame runs no script (its sandbox and policy allow none); being same-origin, it
  // lets this page measure its document, again whenever that changes size (late images,
  // a narrower window).
  const frame = $("#wm-frame");

  function fitFrame() {
    let doc = null;
    try { doc = frame.contentDocument; } catch (e) { return; }
    // Not the empty document a frame holds before its own has loaded.
    if (!doc || doc.URL === "about:blank" || !doc.documentElement) return;
    const root = doc.documentElement;
    const height = Math.ceil(root.getBoundingClientRect().height);
    if (height > 0) frame.style.height = `${height + 2}px`;  // + the frame's border
    if (!frame.dataset.watched && window.ResizeObserver) {
      frame.dataset.watched = "1";
      new ResizeObserver(fitFrame).observe(root);
    }
  }

  if (frame) {
    frame.addEventListener("load", () => { delete frame.dataset.watched; fitFrame(); });
    fitFrame();  // loaded already (from the cache, before this script ran)
    window.addEventListener("resize", fitFrame);
  }

  // Keyboard shortcuts ------------------------------------------------------------------------
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (target.closest && target.closest("input, textarea, select, [contenteditable]")) {
      if (event.key === "Escape") target.blur();
      return;
    }
    const key = event.key;
    if (key === "c" && body.dataset.composeUrl && !$("#wm-compose")) { window.location = body.dataset.composeUrl; return; }
    if (key === "/") { const search = $("[data-key='/']"); if (search) { event.preventDefault(); search.focus(); } return; }
    if (list && rows().length) {
      if (key === "j") { setCurrent(current + 1); return; }
      if (key === "k") { setCurrent(current < 0 ? 0 : current - 1); return; }
      if ((key === "o" || key === "Enter") && current >= 0) { const link = $("td.wm-subject a", rows()[current]); if (link) link.click(); return; }
      if (key === "x" && current >= 0) { const box = $("input[type=checkbox]", rows()[current]); box.checked = !box.checked; markSelected(rows()[current]); return; }
      if (key === "#") { submitAction("delete"); return; }
      if (key === "e") { submitAction("archive"); return; }
      return;
    }
    const link = $(`[data-key="${CSS.escape(key)}"]`);
    if (link) { link.click(); return; }
    const action = { "#": "delete", "e": "archive" }[key];
    if (action) { const button = $(`button[data-key-action="${action}"]`); if (button) button.click(); }
  });

  // New mail without reloading ----------------------------------------------------------------
  const pollUrl = body.dataset.pollUrl;
  const pollSeconds = Math.max(2, parseInt(body.dataset.pollSeconds || "15", 10));
  const baseTitle = document.title;
  let polling = false;

  function updateCounts(unread) {
    let inbox = 0;
    $$("[data-unread-for]").forEach((badge) => {
      const id = badge.dataset.unreadFor;
      const count = unread[id] || 0;
      const link = badge.closest(".wm-folder");
      if (link && link.dataset.role === "inbox") inbox = count;
      badge.classList.toggle("zero", !count);
      badge.textContent = count ? String(count) : "";
      if (count) { const hidden = document.createElement("span"); hidden.className = "visually-hidden"; hidden.textContent = " unread"; badge.appendChild(hidden); }
    });
    document.title = inbox ? `(${inbox}) ${baseTitle}` : baseTitle;
  }

  function applyChanges(data) {
    if (!list) return;
    const byUid = new Map(rows().map((row) => [row.dataset.uid, row]));
    (data.changed || []).forEach((change) => {
      const row = byUid.get(String(change.uid));
      if (!row) return;
      row.classList.toggle("unread", !change.seen);
      row.classList.toggle("flagged", change.flagged);
      row.classList.toggle("answered", change.answered);
    });
    (data.gone || []).forEach((uid) => { const row = byUid.get(String(uid)); if (row) row.remove(); });
    const notice = $("#wm-new-mail");
    const selecting = rows().some((row) => $("input[type=checkbox]", row).checked);
    if (data.new_count && list.dataset.live === "1" && !selecting) {
      const holder = document.createElement("tbody");
      holder.innerHTML = data.new_rows;  // rendered by the server, escaped there
      const fresh = $$("tr.wm-row", holder).filter((row) => !byUid.has(row.dataset.uid));
      $("tbody", list).prepend(...fresh);
      list.hidden = false;
      const empty = $(".wm-empty"); if (empty) empty.remove();
      fresh.forEach((row) => row.classList.add("fresh"));
      const total = $("#wm-total");
      if (total && fresh.length) {
        const count = parseInt(total.dataset.total, 10) + fresh.length;
        total.dataset.total = String(count);
        total.textContent = `${count} message${count === 1 ? "" : "s"}`;
      }
      if (current >= 0) current += fresh.length;
    } else if ((data.new_count || data.reload) && notice) {
      $("span", notice).textContent = data.reload ? "This folder changed." : `${data.new_count} new message${data.new_count === 1 ? "" : "s"}.`;
      notice.hidden = false;
    }
    if (data.modseq) list.dataset.modseq = data.modseq;
    if (data.uidnext) list.dataset.uidnext = data.uidnext;
  }

  async function poll() {
    if (polling || document.hidden) return;
    polling = true;
    try {
      const params = new URLSearchParams();
      if (list && body.dataset.folder) {
        params.set("folder", body.dataset.folder);
        params.set("modseq", list.dataset.modseq);
        params.set("uidnext", list.dataset.uidnext);
      }
      const response = await fetch(`${pollUrl}?${params}`, { credentials: "same-origin", headers: { "Accept": "application/json" } });
      if (response.ok) {
        const data = await response.json();
        updateCounts(data.unread || {});
        applyChanges(data);
      }
    } catch (error) {
      // Offline for a moment: the next round tries again.
    } finally {
      polling = false;
    }
  }

  if (pollUrl) {
    window.setInterval(poll, pollSeconds * 1000);
    document.addEventListener("visibilitychange", () => { if (!document.hidden) poll(); });
  }

  // Compose: autosave and address suggestions ------------------------------------------------
  const compose = $("#wm-compose");
  if (compose) {
    const status = $("#wm-autosave-status");
    const seconds = Math.max(5, parseInt(compose.dataset.autosaveSeconds || "20", 10));
    let dirty = false;
    let saving = null;
    let sending = false;
    compose.addEventListener("input", () => { dirty = true; });
    compose.addEventListener("change", () => { dirty = true; });

    function keptList(attachments) {
      const holder = $("#wm-kept");
      holder.textContent = "";
      attachments.forEach((item) => {
        const li = document.createElement("li");
        const label = document.createElement("label");
        const box = document.createElement("input");
        box.type = "checkbox"; box.name = "kept"; box.value = item.ref; box.checked = true;
        const size = document.createElement("span");
        size.className = "muted small";
        size.textContent = ` ${Math.max(1, Math.round(item.size / 1024))} KB`;
        label.append(box, ` ${item.name}`, size);
        li.appendChild(label);
        holder.appendChild(li);
      });
    }

    async function save() {
      if (saving) return saving;
      dirty = false;
      const data = new FormData(compose);
      data.delete("send");
      saving = fetch(compose.dataset.autosaveUrl, {
        method: "POST", body: data, credentials: "same-origin",
        headers: { "X-CSRFToken": csrf(), "Accept": "application/json" },
      }).then(async (response) => {
        const answer = await response.json().catch(() => ({}));
        if (!response.ok) { dirty = true; if (status) status.textContent = answer.error || "Draft not saved."; return; }
        compose.elements.draft.value = answer.draft;
        compose.elements.attached.value = "";
        keptList(answer.attachments || []);
        const files = compose.elements.attachments; if (files) files.value = "";
        if (status) status.textContent = `Draft saved at ${answer.saved}.`;
      }).catch(() => { dirty = true; if (status) status.textContent = "Offline: the draft is not saved yet."; })
        .finally(() => { saving = null; });
      return saving;
    }

    window.setInterval(() => { if (dirty && !sending) save(); }, seconds * 1000);
    compose.addEventListener("submit", (event) => {
      if (saving) {
        // Wait for the save in flight: it replaces the draft this form refers to.
        event.preventDefault();
        const submitter = event.submitter;
        saving.then(() => { sending = true; compose.requestSubmit(submitter); });
        return;
      }
      sending = true;
    });

    // Address suggestions from recent correspondents.
    $$("input[data-suggest]", compose).forEach((input) => {
      const box = document.createElement("ul");
      box.className = "wm-suggest"; box.hidden = true; box.setAttribute("role", "listbox");
      box.id = `${input.id}-suggestions`;
      input.parentNode.appendChild(box);
      input.setAttribute("aria-autocomplete", "list");
      input.setAttribute("aria-controls", box.id);
      let timer = null;
      let chosen = -1;
      const items = () => $$("li", box);
      const lastToken = () => input.value.split(",").pop().trim();
      function close() { box.hidden = true; chosen = -1; input.setAttribute("aria-expanded", "false"); }
      function accept(text) {
        const parts = input.value.split(",");
        parts[parts.length - 1] = ` ${text}`;
        input.value = `${parts.join(",").replace(/^\s+/, "")}, `;
        dirty = true;
        close();
        input.focus();
      }
      function highlight(index) {
        const all = items();
        chosen = (index + all.length) % all.length;
        all.forEach((li, i) => li.setAttribute("aria-selected", String(i === chosen)));
      }
      input.addEventListener("input", () => {
        window.clearTimeout(timer);
        const token = lastToken();
        if (!token) { close(); return; }
        timer = window.setTimeout(async () => {
          try {
            const response = await fetch(`${compose.dataset.suggestUrl}?q=${encodeURIComponent(token)}`, { credentials: "same-origin" });
            if (!response.ok) return;
            const data = await response.json();
            box.textContent = "";
            (data.addresses || []).forEach((address, i) => {
              const li = document.createElement("li");
              li.setAttribute("role", "option"); li.id = `${box.id}-${i}`; li.textContent = address;
              li.addEventListener("mousedown", (event) => { event.preventDefault(); accept(address); });
              box.appendChild(li);
            });
            box.hidden = !data.addresses || !data.addresses.length;
            input.setAttribute("aria-expanded", String(!box.hidden));
            chosen = -1;
          } catch (error) { close(); }
        }, 200);
      });
      input.addEventListener("keydown", (event) => {
        if (box.hidden) return;
        if (event.key === "ArrowDown") { event.preventDefault(); highlight(chosen + 1); }
        else if (event.key === "ArrowUp") { event.preventDefault(); highlight(chosen - 1); }
        else if ((event.key === "Enter" || event.key === "Tab") && chosen >= 0) { event.preventDefault(); accept(items()[chosen].textContent); }
        else if (event.key === "Escape") { close(); }
      });
      input.addEventListener("blur", () => window.setTimeout(close, 150));
    });
  }
})();
