// Drives the embedded mapping page against the HubSpot sandbox in headless Chromium: the
// admin connects through the page's sign-in window, keeps contacts on the standard
// `contacts` object, turns on projects and points them at the portal's custom `2-…` object,
// maps a custom property and enumeration values on each, and saves.
// Run by integration-tests/tests/it/embed_page.rs, which deploys the manifest, registers the
// HubSpot app, mints the scoped token and serves the product page framing ours.
//
// Environment: HOST_URL (the product page framing the page with its `#token=…`),
// CHROMIUM (the browser binary).
// Prints one JSON line on success: {"connection_id": "...", "project_object": "2-…"}.
import { STEP_TIMEOUT, check, launch, openFramed, optionValue, textMatches, visible } from "./lib.mjs";

const { HOST_URL, CHROMIUM } = process.env;

const browser = await launch(CHROMIUM);
try {
  const context = await browser.newContext({ viewport: { width: 1100, height: 1000 } });
  const { page, app, consoleErrors, unnamedControls } = await openFramed(context, HOST_URL);

  // 1. Connect HubSpot: the sign-in window opens, the sandbox approves, the page sees ACTIVE.
  await visible(app.getByRole("heading", { name: "1. Connect your CRM" }), "the connect step in the frame");
  const connect = app.getByRole("button", { name: "Connect HubSpot" });
  const [popup] = await Promise.all([page.waitForEvent("popup"), connect.click()]);
  await popup.waitForEvent("close", { timeout: STEP_TIMEOUT }).catch(() => {});
  await visible(app.locator(".badge.active", { hasText: "ACTIVE" }), "the active HubSpot connection");
  await textMatches(page, app.locator("#status"), (t) => t.startsWith("Connected to HubSpot"), "the connected message");
  await app.getByRole("button", { name: "Continue" }).click();

  // 2. Objects: contacts on their standard object; projects on the custom `2-…` object.
  await visible(app.getByRole("heading", { name: "2. Choose what to sync" }), "the objects step");
  check(await app.getByLabel(/^Sync Contact/).isChecked(), "contacts are on by default");
  check((await app.locator("#crm-object-contact").inputValue()) === "contacts", "contacts default to `contacts`");
  const syncProjects = app.getByLabel(/^Sync Project/);
  check(!(await syncProjects.isChecked()), "projects are off by default");
  await syncProjects.check();
  const projectObject = app.locator("#crm-object-project");
  const custom = await optionValue(projectObject, (t) => t.startsWith("Project (2-") && t.includes("custom"),
    "the portal's custom Project object in the picker");
  await projectObject.selectOption(custom);
  await app.getByRole("button", { name: "Continue" }).click();

  // 3. Fields: HubSpot properties, custom ones marked; enumeration values mapped.
  await visible(app.getByRole("heading", { name: "3. Map fields" }), "the fields step");
  const segment = app.getByLabel("Segment", { exact: true });
  await visible(segment, "the segment field");
  const customProperty = segment.locator("option[value='external_crm_id']");
  check(((await customProperty.textContent()) || "").includes("custom"), "the custom property external_crm_id is offered, marked custom");
  await segment.selectOption("external_crm_id");
  const tier = app.getByLabel("Tier", { exact: true });
  await tier.selectOption("customer_tier");
  await visible(app.getByRole("group", { name: /Values of Tier/ }), "the tier's value map");
  await app.getByLabel("gold", { exact: true }).selectOption("gold");
  await app.getByLabel("silver", { exact: true }).selectOption("silver");
  await app.getByLabel("bronze", { exact: true }).selectOption("bronze");

  // The custom object's own properties: its primary name and its enumeration.
  const projectName = app.getByLabel("Name (required)", { exact: true });
  await visible(projectName, "the project's name field");
  await projectName.selectOption("project_name");
  await app.getByLabel("Status", { exact: true }).selectOption("status");
  await visible(app.getByRole("group", { name: /Values of Status/ }), "the status value map");
  await app.getByLabel("planned", { exact: true }).selectOption("planned");
  await app.getByLabel("active", { exact: true }).selectOption("active");
  await app.getByLabel("done", { exact: true }).selectOption("completed");
  await textMatches(page, app.locator("#status"), (t) => t === "Everything maps.", "validation of the full draft");
  const unnamed = await unnamedControls();
  check(unnamed.length === 0, "controls without a label on the fields step: " + unnamed.join(", "));

  // 4. Save.
  await app.getByRole("button", { name: "Save mapping" }).click();
  await visible(app.getByRole("heading", { name: "Mapping saved" }), "the saved step");
  const done = (await app.locator("#done-text").textContent()) || "";
  check(/version \d+/.test(done) && done.includes("uses it from now on"), `the saved, ready plan is reported (${done})`);
  check(consoleErrors.length === 0, "no console errors: " + consoleErrors.join(" | "));
  const connectionId = await app.locator("input[name='connection']:checked").getAttribute("value");
  console.log(JSON.stringify({ connection_id: connectionId, project_object: custom }));
} finally {
  await browser.close();
}
