// The self-serve mapping page: connect -> objects -> fields -> saved.
// Talks only to the gateway's /embed/api with the scoped token from the URL fragment; the
// token is kept in memory and removed from the address bar at once. DOM is built with
// textContent only (no HTML from data).
"use strict";
(function () {
  const state = {
    token: "",
    session: null,
    connectionId: "",
    setup: null,
    crmObjects: new Map(), // CRM object name -> detail (fields)
    draft: new Map(), // model object -> {provider_field, picklist} per model field
    pollTimer: 0,
    popup: null, // the CRM sign-in window, while one is open
    popupClosedSeen: false,
    validateTimer: 0,
    validateSeq: 0,
  };

  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === false || value === null || value === undefined) continue;
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function slug(text) {
    return String(text).replace(/[^A-Za-z0-9_-]/g, "_");
  }

  // --- messages -------------------------------------------------------------------------

  function say(text) {
    $("status").textContent = text || "";
  }

  function fail(text) {
    const alert = $("alert");
    alert.textContent = text;
    alert.hidden = !text;
  }

  class ApiError extends Error {
    constructor(status, body) {
      const error = (body && body.error) || {};
      super(error.message || "something went wrong (" + status + ")");
      this.status = status;
      this.code = error.code || "";
      this.violations = error.violations || [];
    }
  }

  async function api(method, path, body) {
    const init = {
      method,
      headers: { authorization: "Bearer " + state.token, accept: "application/json" },
      cache: "no-store",
      credentials: "omit",
    };
    if (body !== undefined) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch("/embed/api" + path, init);
    } catch (e) {
      throw new ApiError(0, { error: { message: "the service could not be reached; check your network and try again" } });
    }
    let data = null;
    try {
      data = await response.json();
    } catch (e) {
      data = null;
    }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  function connectionPath() {
    return "/connections/" + encodeURIComponent(state.connectionId);
  }

  // --- steps ----------------------------------------------------------------------------

  // Shows one step; moves focus to its heading unless this is the first render (focusing
  // inside an iframe on load would pull the host page's focus and scroll).
  function show(step, focus = true) {
    for (const section of document.querySelectorAll(".step")) {
      section.hidden = section.id !== "step-" + step;
    }
    for (const item of document.querySelectorAll("#steps li")) {
      if (item.dataset.step === step) item.setAttribute("aria-current", "step");
      else item.removeAttribute("aria-current");
    }
    const heading = document.querySelector("#step-" + step + " h2");
    if (heading && focus) heading.focus();
  }

  // --- step 1: connect ------------------------------------------------------------------

  function providerName(key) {
    return { salesforce: "Salesforce", hubspot: "HubSpot" }[key] || key;
  }

  function renderConnect() {
    const apps = $("apps");
    apps.replaceChildren();
    const scoped = state.session.connection_id;
    for (const app of state.session.apps) {
      const label = (scoped ? "Reconnect " : "Connect ") + (app.display_name || providerName(app.provider));
      apps.append(el("button", { type: "button", class: "primary", onclick: () => connect(app.id) , text: label }));
    }
    if (!state.session.apps.length) {
      apps.append(el("p", { text: "No CRM is available to connect yet. Ask the application's support team." }));
    }
    const list = $("connections");
    list.replaceChildren();
    const connections = state.session.connections;
    if (!connections.length) {
      list.append(el("p", { class: "hint", text: "No CRM is connected yet." }));
    } else {
      const fieldset = el("fieldset", { class: "object" }, el("legend", { text: "Connected CRMs" }));
      for (const c of connections) {
        const id = "conn-" + slug(c.id);
        const attention = c.installation_state === "NEEDS_ATTENTION";
        const radio = el("input", {
          type: "radio", name: "connection", id, value: c.id,
          checked: c.id === state.connectionId,
          "aria-describedby": attention ? "attention-" + id : null,
          onchange: () => { state.connectionId = c.id; updateContinue(); },
        });
        fieldset.append(el("div", { class: "card" }, radio, " ",
          el("label", { for: id },
            (c.display_name || providerName(c.provider)) + (c.account ? " · " + c.account : "") + " "),
          el("span", { class: "badge" + (c.status === "ACTIVE" ? " active" : ""), text: c.status }),
          attention ? " " : null,
          attention ? el("span", { class: "badge attention", id: "attention-" + id, text: "Mapping needs attention" }) : null,
          c.status_message ? el("span", { class: "hint", text: c.status_message }) : null,
          c.status !== "ACTIVE" && c.provider_app_id
            ? el("button", { type: "button", onclick: () => connect(c.provider_app_id, c.id),
                text: "Reconnect " + (c.display_name || providerName(c.provider)) })
            : null));
      }
      list.append(fieldset);
    }
    updateContinue();
  }

  function selectedConnection() {
    return state.session.connections.find((c) => c.id === state.connectionId);
  }

  function updateContinue() {
    const c = selectedConnection();
    $("to-objects").disabled = !(c && c.status === "ACTIVE");
  }

  async function refreshSession() {
    state.session = await api("GET", "/session");
    if (!state.connectionId) {
      const active = state.session.connections.find((c) => c.status === "ACTIVE");
      if (active) state.connectionId = active.id;
    }
    renderConnect();
  }

  function stopPolling() {
    if (state.pollTimer) window.clearTimeout(state.pollTimer);
    state.pollTimer = 0;
  }

  async function watchConnection(id, deadline) {
    stopPolling();
    let connection;
    try {
      connection = await api("GET", "/connections/" + encodeURIComponent(id));
    } catch (e) {
      fail(e.message);
      return;
    }
    if (connection.status === "ACTIVE") {
      state.connectionId = id;
      await refreshSession();
      say("Connected to " + providerName(connection.provider) + ". Choose Continue to set up the sync.");
      $("to-objects").focus();
      return;
    }
    if (Date.now() > deadline) {
      say("");
      fail("The CRM sign-in did not finish. Try connecting again.");
      return;
    }
    if (state.popup && state.popup.closed) {
      // The sign-in window closes itself only after success, when the connection is already
      // active; this answer may predate that, so look once more before concluding that the
      // admin gave up or the CRM refused (as that window said).
      if (state.popupClosedSeen) {
        state.popup = null;
        say("");
        fail("The CRM window was closed before the connection finished. Try connecting again.");
        return;
      }
      state.popupClosedSeen = true;
    }
    state.pollTimer = window.setTimeout(() => watchConnection(id, deadline), 1000);
  }

  async function connect(appId, connectionId) {
    fail("");
    say("Opening the CRM sign-in…");
    // Open the window synchronously with the click (popup blockers), then point it at the CRM.
    const popup = window.open("about:blank", "syncline-connect", "popup,width=640,height=720");
    let started;
    try {
      started = await api("POST", "/connect", { provider_app_id: appId, connection_id: connectionId || "" });
    } catch (e) {
      if (popup) popup.close();
      say("");
      fail(e.message);
      return;
    }
    if (popup) {
      state.popup = popup;
      state.popupClosedSeen = false;
      popup.location.href = started.authorization_url;
      say("Waiting for you to allow access in the CRM window…");
    } else {
      say("");
      fail("Your browser blocked the sign-in window. Allow pop-ups for this page and try again.");
      return;
    }
    watchConnection(started.connection_id, Date.now() + 10 * 60 * 1000);
  }

  window.addEventListener("message", (event) => {
    if (event.origin !== window.location.origin) return;
    const data = event.data || {};
    if (data.type === "syncline:connected" && data.connection_id) {
      watchConnection(data.connection_id, Date.now() + 60 * 1000);
    }
  });

  // --- step 2: objects ------------------------------------------------------------------

  function crmObjectOptions(selected) {
    const options = [];
    for (const o of state.setup.crm_objects) {
      const text = (o.label || o.name) + " (" + o.name + ")" + (o.custom ? " · custom" : "");
      options.push(el("option", { value: o.name, selected: o.name === selected, text }));
    }
    if (selected && !state.setup.crm_objects.some((o) => o.name === selected)) {
      options.unshift(el("option", { value: selected, selected: true, text: selected + " (not found in your CRM)" }));
    }
    return options;
  }

  // The installation's reason an enabled object keeps it from ready (schema drift broke the
  // saved mappings, a newer manifest, ...); "" when there is none to show.
  function objectIssue(o) {
    if (!o.enabled || !o.issue) return "";
    const crmFields = [];
    for (const v of state.setup.drift || []) {
      if (v.object === o.key && v.field && !crmFields.includes(v.field)) crmFields.push(v.field);
    }
    if (!crmFields.length) return "Needs attention: " + o.issue;
    return "Needs attention: your CRM changed since this mapping was saved, and these CRM fields no longer fit it: " +
      crmFields.join(", ") + ". Choose other fields for them and save again.";
  }

  // One line for the live region naming what needs attention, or "".
  function issueSummary() {
    const broken = state.setup.objects.filter((o) => objectIssue(o));
    if (!broken.length) return "";
    return "Your saved mapping needs attention, because your CRM changed or the integration did: " +
      broken.map((o) => o.label).join(", ") + ". Check the marked objects and fields, then save again.";
  }

  function renderObjects() {
    const root = $("objects");
    root.replaceChildren();
    for (const o of state.setup.objects) {
      const id = slug(o.key);
      const what = [o.reads ? "reads" : "", o.writes ? "writes" : ""].filter(Boolean).join(" and ");
      const issue = objectIssue(o);
      const describedBy = issue ? "object-problem-" + id : null;
      root.append(el("fieldset", { class: "object", id: "object-" + id },
        el("legend", { text: o.label }),
        o.description ? el("p", { class: "hint", text: o.description }) : null,
        el("p", {},
          el("input", { type: "checkbox", id: "enable-" + id, checked: o.enabled, "aria-describedby": describedBy }), " ",
          el("label", { for: "enable-" + id, text: "Sync " + o.label + (what ? " (the application " + what + " them)" : "") })),
        el("p", {},
          el("label", { for: "crm-object-" + id, text: "CRM object " }),
          el("select", { id: "crm-object-" + id, "aria-describedby": describedBy },
            crmObjectOptions(o.provider_object))),
        el("p", { class: "problem", id: "object-problem-" + id, hidden: !issue, text: issue })));
    }
  }

  async function openObjects() {
    fail("");
    say("Loading your CRM's objects…");
    state.setup = await api("GET", connectionPath() + "/setup");
    state.draft = new Map();
    for (const o of state.setup.objects) {
      const fields = new Map();
      for (const f of o.fields) {
        fields.set(f.key, { provider_field: f.provider_field, picklist: Object.assign({}, f.picklist) });
      }
      state.draft.set(o.key, fields);
    }
    renderObjects();
    show("objects");
    say(issueSummary());
  }

  async function saveObjects() {
    fail("");
    const choices = state.setup.objects.map((o) => ({
      object: o.key,
      enabled: $("enable-" + slug(o.key)).checked,
      provider_object: $("crm-object-" + slug(o.key)).value,
    }));
    say("Saving your choices…");
    try {
      await api("PUT", connectionPath() + "/objects", { objects: choices });
    } catch (e) {
      say("");
      fail(e.message);
      return;
    }
    for (const choice of choices) {
      const o = state.setup.objects.find((x) => x.key === choice.object);
      if (o.provider_object !== choice.provider_object) {
        // Another CRM object: the old field choices do not apply.
        o.provider_object = choice.provider_object;
        for (const f of o.fields) {
          f.fixed = [];
          state.draft.get(o.key).set(f.key, { provider_field: "", picklist: {} });
        }
      }
      o.enabled = choice.enabled;
    }
    await openFields();
  }

  // --- step 3: fields -------------------------------------------------------------------

  async function crmObject(name) {
    if (!state.crmObjects.has(name)) {
      state.crmObjects.set(name, await api("GET", connectionPath() + "/crm-objects/" + encodeURIComponent(name)));
    }
    return state.crmObjects.get(name);
  }

  function fieldId(object, field) {
    return slug(object) + "--" + slug(field);
  }

  function fieldOptions(crm, selected) {
    const options = [el("option", { value: "", text: "— not synced —" })];
    for (const f of crm.fields) {
      const text = (f.label || f.name) + " (" + f.name + ") · " + f.type + (f.custom ? " · custom" : "") + (f.writable ? "" : " · read only");
      options.push(el("option", { value: f.name, selected: f.name === selected, text }));
    }
    if (selected && !crm.fields.some((f) => f.name === selected)) {
      options.push(el("option", { value: selected, selected: true, text: selected + " (not found in your CRM)" }));
    }
    return options;
  }

  function renderValues(object, field, crm) {
    const id = fieldId(object.key, field.key);
    const box = $("values-" + id);
    box.replaceChildren();
    const choice = state.draft.get(object.key).get(field.key);
    const crmField = crm.fields.find((f) => f.name === choice.provider_field);
    if (!field.values.length || !crmField || !crmField.picklist_values.length) {
      box.hidden = true;
      return;
    }
    box.hidden = false;
    box.append(el("legend", { text: "Values of " + field.label + " in " + (crmField.label || crmField.name) }));
    for (const value of field.values) {
      const vid = "value-" + id + "-" + slug(value);
      const select = el("select", {
        id: vid,
        onchange: (e) => {
          if (e.target.value) choice.picklist[value] = e.target.value;
          else delete choice.picklist[value];
          scheduleValidate();
        },
      }, el("option", { value: "", text: "— keep as is —" }),
      crmField.picklist_values.map((v) => el("option", { value: v, selected: choice.picklist[value] === v, text: v })));
      box.append(el("div", { class: "value-row" }, el("label", { for: vid, text: value }), select));
    }
  }

  async function openFields() {
    fail("");
    say("Loading your CRM's fields…");
    const root = $("fields");
    root.replaceChildren();
    const enabled = state.setup.objects.filter((o) => o.enabled);
    try {
      for (const o of enabled) {
        const crm = await crmObject(o.provider_object);
        const issue = objectIssue(o);
        const fieldset = el("fieldset", {
          class: "object", id: "fields-" + slug(o.key),
          "aria-describedby": issue ? "object-drift-" + slug(o.key) : null,
        },
          el("legend", { text: o.label + " ↔ " + (crm.label || crm.name) + (crm.custom ? " (custom)" : "") }),
          issue ? el("p", { class: "problem saved-issue", id: "object-drift-" + slug(o.key), text: issue }) : null,
          el("p", { class: "problem", id: "object-issues-" + slug(o.key), hidden: true }));
        for (const f of o.fields) {
          const id = fieldId(o.key, f.key);
          const label = f.label + (f.required ? " (required)" : "");
          const hint = f.type + (f.read_only ? " · read only" : "") + (f.description ? " · " + f.description : "");
          let control;
          if (f.fixed.length) {
            control = el("div", {}, el("span", { class: "fixed", id: "select-" + id, text: "Set by the application: " + f.fixed.join(" + ") }));
          } else {
            const choice = state.draft.get(o.key).get(f.key);
            const select = el("select", {
              id: "select-" + id,
              "aria-describedby": "hint-" + id + " problem-" + id,
              onchange: (e) => {
                choice.provider_field = e.target.value;
                choice.picklist = {};
                renderValues(o, f, crm);
                scheduleValidate();
              },
            }, fieldOptions(crm, choice.provider_field));
            control = el("div", {}, select,
              el("p", { class: "problem", id: "problem-" + id, hidden: true }),
              el("fieldset", { class: "values", id: "values-" + id, hidden: true }));
          }
          fieldset.append(el("div", { class: "row" },
            el("div", {}, el("label", { for: "select-" + id, text: label }), el("span", { class: "hint", id: "hint-" + id, text: hint })),
            control));
        }
        root.append(fieldset);
        for (const f of o.fields) if (!f.fixed.length) renderValues(o, f, crm);
      }
    } catch (e) {
      say("");
      fail(e.message);
      return;
    }
    show("fields");
    // What drift broke in the saved plan, next to each field, until the draft is checked.
    const enabledKeys = new Set(enabled.map((o) => o.key));
    const drift = (state.setup.drift || []).filter((v) => enabledKeys.has(v.object));
    showProblems(drift);
    say(drift.length ? problemSummary(drift) : "");
    validateNow();
  }

  // "2 field(s) need attention: Segment, Signup date." for the live region.
  function problemSummary(violations) {
    const names = [];
    for (const v of violations) {
      const o = state.setup.objects.find((x) => x.key === v.object);
      const f = o && o.fields.find((x) => x.key === v.model_field);
      const name = f ? f.label : o ? o.label : v.field;
      if (name && !names.includes(name)) names.push(name);
    }
    return names.length + " field(s) need attention: " + names.join(", ") + ".";
  }

  function draftBody() {
    const objects = [];
    for (const o of state.setup.objects.filter((x) => x.enabled)) {
      const fields = [];
      for (const [key, choice] of state.draft.get(o.key)) {
        if (choice.provider_field) {
          fields.push({ model_field: key, provider_field: choice.provider_field, picklist: choice.picklist });
        }
      }
      objects.push({ object: o.key, provider_object: o.provider_object, fields });
    }
    return { objects };
  }

  function clearProblems() {
    for (const node of document.querySelectorAll("#fields .problem:not(.saved-issue)")) {
      node.hidden = true;
      node.textContent = "";
    }
    for (const node of document.querySelectorAll("#fields select[aria-invalid]")) {
      node.removeAttribute("aria-invalid");
    }
  }

  function showProblems(violations) {
    clearProblems();
    let first = null;
    const seen = new Set();
    for (const v of violations) {
      // One line per field and kind of problem (a rule read both ways fails twice).
      const once = [v.object, v.model_field, v.field, v.kind].join("\u0000");
      if (seen.has(once)) continue;
      seen.add(once);
      const id = fieldId(v.object, v.model_field);
      let target = v.model_field ? $("problem-" + id) : null;
      const select = v.model_field ? $("select-" + id) : null;
      if (!target) target = $("object-issues-" + slug(v.object));
      if (!target) continue;
      target.textContent = (target.textContent ? target.textContent + " " : "") + problemText(v);
      target.hidden = false;
      if (select && select.tagName === "SELECT") {
        select.setAttribute("aria-invalid", "true");
        if (!first) first = select;
      }
    }
    return first;
  }

  function problemText(v) {
    if (v.kind === "PROVIDER_FIELD_UNKNOWN" && v.field) {
      return "Not in your CRM: " + v.field + " was removed or renamed there. Choose another field.";
    }
    // The page maps field to field: where the service suggests a transform, another field is
    // the page's remedy.
    const message = String(v.message)
      .replace(/^(inbound|outbound): /, "")
      .replace(/; add a `coerce` transform$/, "; choose a field of a matching type");
    return (v.kind === "TYPE_INCOMPATIBLE" ? "Type mismatch: " : "") + message;
  }

  function scheduleValidate() {
    if (state.validateTimer) window.clearTimeout(state.validateTimer);
    state.validateTimer = window.setTimeout(validateNow, 250);
  }

  async function validateNow() {
    const seq = ++state.validateSeq;
    try {
      const checked = await api("POST", connectionPath() + "/validate", draftBody());
      if (seq !== state.validateSeq) return;
      showProblems(checked.violations);
      say(checked.valid ? "Everything maps." : problemSummary(checked.violations));
    } catch (e) {
      if (seq !== state.validateSeq) return;
      if (e.violations.length) showProblems(e.violations);
      say(e.message);
    }
  }

  async function save() {
    fail("");
    state.validateSeq++;
    const button = $("save");
    button.disabled = true;
    say("Saving…");
    try {
      const saved = await api("POST", connectionPath() + "/mappings", draftBody());
      clearProblems();
      $("done-text").textContent = "Your mapping is saved (version " + saved.plan_version + "). " +
        (saved.installation_state === "READY" ? "The sync uses it from now on." : "Some objects still need attention.");
      // What was saved is now the mapping: its past issues no longer apply.
      for (const o of state.setup.objects) o.issue = "";
      state.setup.drift = [];
      for (const node of document.querySelectorAll("#fields .saved-issue")) node.remove();
      for (const node of document.querySelectorAll("#fields fieldset[aria-describedby]")) node.removeAttribute("aria-describedby");
      const c = selectedConnection();
      if (c) c.installation_state = saved.installation_state;
      renderConnect();
      say("Mapping saved.");
      show("done");
    } catch (e) {
      say("");
      const first = showProblems(e.violations);
      fail(e.violations.length ? "The mapping was not saved: " + e.violations.length + " field(s) need attention." : e.message);
      if (first) first.focus();
    } finally {
      button.disabled = false;
    }
  }

  // --- start ----------------------------------------------------------------------------

  function guard(fn) {
    return async (...args) => {
      try {
        await fn(...args);
      } catch (e) {
        say("");
        fail(e.message || String(e));
      }
    };
  }

  async function start() {
    const params = new URLSearchParams(window.location.hash.replace(/^#/, ""));
    state.token = params.get("token") || "";
    if (window.location.hash) {
      window.history.replaceState(null, "", window.location.pathname + window.location.search);
    }
    $("to-objects").addEventListener("click", guard(openObjects));
    $("back-connect").addEventListener("click", () => show("connect"));
    $("to-fields").addEventListener("click", guard(saveObjects));
    $("back-objects").addEventListener("click", () => show("objects"));
    $("save").addEventListener("click", guard(save));
    $("edit-again").addEventListener("click", () => show("fields"));
    if (!state.token) {
      fail("This page needs a link from the application. Open it again from the application's settings.");
      return;
    }
    say("Loading…");
    try {
      await refreshSession();
      state.connectionId = state.session.connection_id || state.connectionId;
      renderConnect();
      const c = selectedConnection();
      say(c && c.installation_state === "NEEDS_ATTENTION"
        ? "The saved mapping for " + (c.display_name || providerName(c.provider)) +
          " needs attention. Choose Continue to review it."
        : "");
      show("connect", false);
    } catch (e) {
      say("");
      fail(e.message);
    }
  }

  document.addEventListener("DOMContentLoaded", start);
})();
