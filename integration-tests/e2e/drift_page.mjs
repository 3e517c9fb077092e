// Drives the embedded mapping page after the CRM's schema drifted under a saved mapping:
// the page must still open, show each broken mapping next to its object and field (naming
// the CRM field, tied to the control with aria-describedby and announced in the status
// live region), and let the admin repair and save it.
// The page opens on the connection (the token names it).
// Run by integration-tests/tests/it/embed_page.rs, which saves the mapping, drifts the
// sandbox's schema, refreshes it, mints the token and serves the product page.
//
// Environment: HOST_URL, CHROMIUM, optional DRIFT_SCREENSHOT (where to write the flagged
// fields step), CASE: JSON {"object": model key, "object_label",
// "broken": [{"key", "label", "crm_field", "repair"}]} — each broken model field, the CRM
// field drift broke under it, and the CRM field to choose instead ("" = not synced).
// Prints one JSON line on success: {"repaired": n}.
import { check, description, launch, openFramed, textMatches, visible } from "./lib.mjs";

const { HOST_URL, CHROMIUM } = process.env;
const CASE = JSON.parse(process.env.CASE);

const browser = await launch(CHROMIUM);
try {
  const context = await browser.newContext({ viewport: { width: 1100, height: 1000 } });
  const { page, app, consoleErrors, unnamedControls } = await openFramed(context, HOST_URL);
  const status = app.locator("#status");

  // 1. The connection is active; its first screen already says the mapping needs attention.
  await visible(app.locator(".badge.active", { hasText: "ACTIVE" }), "the active connection");
  await visible(app.locator(".badge.attention", { hasText: "Mapping needs attention" }), "the connection's attention badge");
  const radio = app.locator("input[name='connection']:checked");
  check((await description(radio)) === "Mapping needs attention", "the badge describes the connection's radio button");
  await textMatches(page, status, (t) => t.includes("needs attention") && t.includes("Continue"),
    "the live region's announcement on the first screen");
  await app.getByRole("button", { name: "Continue" }).click();

  // 2. Objects: the object drift broke says so, naming the fields, tied to its controls.
  await visible(app.getByRole("heading", { name: "2. Choose what to sync" }), "the objects step");
  const objectProblem = app.locator("#object-problem-" + CASE.object);
  await visible(objectProblem, "the object's issue");
  const issue = (await objectProblem.textContent()) || "";
  for (const b of CASE.broken) check(issue.includes(b.crm_field), `the object's issue names ${b.crm_field}: ${issue}`);
  const enable = app.getByLabel(new RegExp("^Sync " + CASE.object_label));
  check((await description(enable)).includes(b0()), "the issue describes the object's checkbox");
  const crmObject = app.locator("#crm-object-" + CASE.object);
  check((await description(crmObject)).includes(b0()), "the issue describes the object's CRM object picker");
  await textMatches(page, status, (t) => t.includes("needs attention") && t.includes(CASE.object_label),
    "the live region's announcement of the broken object");
  await app.getByRole("button", { name: "Continue" }).click();

  // 3. Fields: each broken mapping is marked next to its field, naming the CRM field.
  await visible(app.getByRole("heading", { name: "3. Map fields" }), "the fields step");
  const saved = app.locator("#object-drift-" + CASE.object);
  await visible(saved, "the saved mapping's issue on the fields step");
  for (const b of CASE.broken) {
    const select = app.getByLabel(b.label, { exact: true });
    const problem = app.locator(`#problem-${CASE.object}--${b.key}`);
    await textMatches(page, problem, (t) => t.includes(b.crm_field), `the problem next to ${b.label}`);
    check((await select.getAttribute("aria-invalid")) === "true", `${b.label} is marked invalid`);
    check((await description(select)).includes(b.crm_field), `the problem describes ${b.label}'s control`);
  }
  await textMatches(page, status, (t) => CASE.broken.every((b) => t.includes(b.label)),
    "the live region names every broken field");
  let unnamed = await unnamedControls();
  check(unnamed.length === 0, "controls without a label: " + unnamed.join(", "));
  if (process.env.DRIFT_SCREENSHOT) {
    await page.locator('iframe[title="CRM setup"]').screenshot({ path: process.env.DRIFT_SCREENSHOT });
  }

  // Repair: choose other fields; the problems go away.
  for (const b of CASE.broken) {
    await app.getByLabel(b.label, { exact: true }).selectOption(b.repair);
    await app.locator(`#problem-${CASE.object}--${b.key}`).waitFor({ state: "hidden" });
  }
  await textMatches(page, status, (t) => t === "Everything maps.", "validation of the repaired draft");

  // 4. Save: ready again, and the saved issue is gone from the page.
  await app.getByRole("button", { name: "Save mapping" }).click();
  await visible(app.getByRole("heading", { name: "Mapping saved" }), "the saved step");
  const done = (await app.locator("#done-text").textContent()) || "";
  check(done.includes("uses it from now on"), `the repaired installation is ready (${done})`);
  await app.getByRole("button", { name: "Edit the mapping" }).click();
  check((await app.locator("#object-drift-" + CASE.object).count()) === 0, "the saved issue is gone after the save");
  check((await app.locator(".badge.attention").count()) === 0, "the connection's attention badge is gone after the save");
  unnamed = await unnamedControls();
  check(unnamed.length === 0, "controls without a label: " + unnamed.join(", "));
  check(consoleErrors.length === 0, "no console errors: " + consoleErrors.join(" | "));
  console.log(JSON.stringify({ repaired: CASE.broken.length }));
} finally {
  await browser.close();
}

function b0() {
  return CASE.broken[0].crm_field;
}
