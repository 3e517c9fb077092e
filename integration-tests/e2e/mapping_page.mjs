// Drives the embedded mapping page in headless Chromium, from connect to a saved mapping,
// inside an iframe of a product page on another origin (as products embed it).
// Run by integration-tests/tests/it/embed_page.rs, which starts the suite and the CRM
// sandboxes, deploys the manifest, mints the scoped token and serves the product page.
//
// Environment: HOST_URL (the product page framing the page with its `#token=…`),
// DENIED_HOST_URL (the same product page on an origin the allow-list does not name),
// CHROMIUM (the browser binary), SCREENSHOT (where to write the mapping screen).
// Prints one JSON line on success: {"connection_id": "..."}. A failed expectation exits
// non-zero with the reason.
import { STEP_TIMEOUT, check, launch, openFramed, textMatches, visible } from "./lib.mjs";

const { HOST_URL, DENIED_HOST_URL, CHROMIUM, SCREENSHOT } = process.env;

const browser = await launch(CHROMIUM);
try {
  const context = await browser.newContext({ viewport: { width: 1100, height: 1000 } });
  const { page, app, frame, consoleErrors, unnamedControls } = await openFramed(context, HOST_URL);
  const activeId = () => frame().evaluate(() => document.activeElement && document.activeElement.id);

  // 1. Connect: the sign-in window opens, the sandbox approves, the page sees ACTIVE.
  await visible(app.getByRole("heading", { name: "1. Connect your CRM" }), "the connect step in the frame");
  check(!frame().url().includes("token="), "the token is removed from the address bar");
  const connect = app.getByRole("button", { name: /^Connect / });

  // First the admin refuses at the CRM (the sandbox's `deny=true`): the sign-in window says
  // so, and once it is closed the page says the connection did not finish.
  const authorize = "**/services/oauth2/authorize?**";
  await context.route(authorize, (route) => route.continue({ url: route.request().url() + "&deny=true" }));
  const [refusedPopup] = await Promise.all([page.waitForEvent("popup"), connect.click()]);
  await visible(refusedPopup.getByRole("heading", { name: "The connection was not completed" }), "the CRM's refusal in the sign-in window");
  await refusedPopup.close();
  await textMatches(page, app.getByRole("alert"), (t) => t.includes("closed before the connection finished"), "the page's error after a refused sign-in");
  await context.unroute(authorize);

  // Then the admin allows access.
  const [popup] = await Promise.all([page.waitForEvent("popup"), connect.click()]);
  await popup.waitForEvent("close", { timeout: STEP_TIMEOUT }).catch(() => {});
  await visible(app.locator(".badge.active", { hasText: "ACTIVE" }), "the active connection");
  await app.getByRole("alert").waitFor({ state: "hidden", timeout: STEP_TIMEOUT });
  await textMatches(page, app.locator("#status"), (t) => t.startsWith("Connected to Salesforce"), "the connected message");

  // Keyboard: focus moved to Continue; Enter goes on.
  const focused = await activeId();
  check(focused === "to-objects", `focus is on Continue after connecting (was ${focused})`);
  await page.keyboard.press("Enter");

  // 2. Objects: Contact on (standard object), Deal left off; the picker lists custom objects.
  await visible(app.getByRole("heading", { name: "2. Choose what to sync" }), "the objects step");
  const objectFocus = await activeId();
  check(objectFocus === "h-objects", `focus moves to the step's heading (was ${objectFocus})`);
  let unnamed = await unnamedControls();
  check(unnamed.length === 0, "controls without a label on the objects step: " + unnamed.join(", "));
  const syncContacts = app.getByLabel(/^Sync Contact/);
  check(await syncContacts.isChecked(), "contacts are on by default");
  const syncDeals = app.getByLabel(/^Sync Deal/);
  check(!(await syncDeals.isChecked()), "deals are off by default (enabled_by_default: false)");
  const contactObject = app.locator("#crm-object-contact");
  check((await contactObject.inputValue()) === "Contact", "contacts default to the Contact object");
  const customObjects = await contactObject.locator("option", { hasText: "custom" }).count();
  check(customObjects > 0, "the object picker lists the org's custom objects");
  // Keyboard again: Tab from the last picker reaches Back then Continue; Space presses it.
  await app.locator("#objects select").last().focus();
  await page.keyboard.press("Tab");
  await page.keyboard.press("Tab");
  const onContinue = await activeId();
  check(onContinue === "to-fields", `Tab order reaches Continue (was ${onContinue})`);
  await page.keyboard.press("Space");

  // 3. Fields: choices come from the org's discovered Contact fields, custom ones included.
  await visible(app.getByRole("heading", { name: "3. Map fields" }), "the fields step");
  const segment = app.getByLabel("Segment", { exact: true });
  await visible(segment, "the segment field");
  const customOption = segment.locator("option[value='Languages__c']");
  check((await customOption.count()) === 1, "the custom field Languages__c is offered");
  check(((await customOption.textContent()) || "").includes("custom"), "custom fields are marked");
  await segment.selectOption("Languages__c");

  // A required field left unmapped: the mapping service's violation shows next to it.
  const email = app.getByLabel("Email (required)", { exact: true });
  check((await email.inputValue()) === "Email", "email starts on the manifest's default");
  await email.selectOption("");
  await textMatches(page, app.locator("#problem-contact--email"), (t) => t.includes("email"), "the unmapped required field's error");
  check((await email.getAttribute("aria-invalid")) === "true", "the field is marked invalid");
  check((await email.getAttribute("aria-describedby")).includes("problem-contact--email"), "the error describes the field");
  await email.selectOption("Email");
  await app.locator("#problem-contact--email").waitFor({ state: "hidden", timeout: STEP_TIMEOUT });

  // A type mismatch (a date from a checkbox) is flagged next to the field by the mapping
  // service's validation against the discovered schema; a date field clears it.
  const signup = app.getByLabel("Signup date", { exact: true });
  await signup.selectOption("HasOptedOutOfEmail");
  await textMatches(page, app.locator("#problem-contact--signup_date"), (t) => t.startsWith("Type mismatch"), "the type mismatch warning");
  await signup.selectOption("Birthdate");
  await app.locator("#problem-contact--signup_date").waitFor({ state: "hidden", timeout: STEP_TIMEOUT });

  // Picklist: tier -> the custom picklist Level__c, each value mapped.
  const tier = app.getByLabel("Tier", { exact: true });
  await tier.selectOption("Level__c");
  await visible(app.getByRole("group", { name: /Values of Tier/ }), "the picklist value map");
  await app.getByLabel("gold", { exact: true }).selectOption("Primary");
  await app.getByLabel("silver", { exact: true }).selectOption("Secondary");
  await app.getByLabel("bronze", { exact: true }).selectOption("Tertiary");
  await textMatches(page, app.locator("#status"), (t) => t === "Everything maps.", "validation of the full draft");
  unnamed = await unnamedControls();
  check(unnamed.length === 0, "controls without a label on the fields step: " + unnamed.join(", "));

  await page.locator('iframe[title="CRM setup"]').screenshot({ path: SCREENSHOT });

  // 4. Save.
  await app.getByRole("button", { name: "Save mapping" }).click();
  await visible(app.getByRole("heading", { name: "Mapping saved" }), "the saved step");
  const done = await app.locator("#done-text").textContent();
  check(/version \d+/.test(done || ""), `the saved plan version is shown (${done})`);
  check(consoleErrors.length === 0, "no console errors: " + consoleErrors.join(" | "));
  const connectionId = await app.locator("input[name='connection']:checked").getAttribute("value");

  // An origin the allow-list does not name cannot frame the page.
  const denied = await context.newPage();
  const refused = denied.waitForEvent("console", {
    predicate: (m) => /frame-ancestors/.test(m.text()),
    timeout: STEP_TIMEOUT,
  });
  await denied.goto(DENIED_HOST_URL);
  await refused.catch((e) => {
    throw new Error("framing from an origin off the allow-list was not refused: " + e.message);
  });
  const framed = denied.frames().find((f) => f.url().includes("/embed/"));
  const heading = framed ? await framed.locator("h1").count().catch(() => 0) : 0;
  check(heading === 0, "the refused frame shows nothing of the page");

  console.log(JSON.stringify({ connection_id: connectionId }));
} finally {
  await browser.close();
}
