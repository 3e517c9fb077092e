// Helpers shared by the browser scripts: expectations that fail with a reason, waits on
// page state with a deadline (never a fixed sleep), and the framed page's handles.
import { chromium } from "playwright-core";

export const STEP_TIMEOUT = 30_000;

export function check(condition, message) {
  if (!condition) throw new Error("expectation failed: " + message);
}

export async function visible(locator, what) {
  await locator.waitFor({ state: "visible", timeout: STEP_TIMEOUT }).catch((e) => {
    throw new Error(`${what} did not appear: ${e.message}`);
  });
}

/** Waits until `predicate(text)` holds for the locator's text, or fails naming `what`. */
export async function textMatches(page, locator, predicate, what) {
  const deadline = Date.now() + STEP_TIMEOUT;
  let last = "";
  while (Date.now() < deadline) {
    last = (await locator.textContent({ timeout: STEP_TIMEOUT }).catch(() => "")) || "";
    if (predicate(last)) return last;
    await page.waitForTimeout(100);
  }
  throw new Error(`${what}: last text was ${JSON.stringify(last)}`);
}

/** Headless Chromium from `executablePath`. */
export function launch(executablePath) {
  return chromium.launch({
    executablePath,
    headless: true,
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
}

/**
 * Opens `hostUrl` (a product page framing ours) and returns the frame's locator, the frame,
 * the console errors seen so far, and a check that every visible control has a name.
 */
export async function openFramed(context, hostUrl) {
  const page = await context.newPage();
  const consoleErrors = [];
  page.on("console", (m) => {
    // The product page's own missing favicon is not the embedded page's concern.
    if (m.type() === "error" && !m.location().url.endsWith("/favicon.ico")) consoleErrors.push(m.text());
  });
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  await page.goto(hostUrl);
  const app = page.frameLocator('iframe[title="CRM setup"]');
  const frame = () => page.frames().find((f) => f.url().includes("/embed/"));
  // Every visible control has an accessible name: a <label>, or a button's text.
  const unnamedControls = () => frame().evaluate(() =>
    [...document.querySelectorAll("select, input, button")]
      .filter((e) => e.offsetParent !== null)
      .filter((e) => !(e.labels && e.labels.length) && !(e.tagName === "BUTTON" && e.textContent.trim()))
      .map((e) => e.id || e.outerHTML));
  return { page, app, frame, consoleErrors, unnamedControls };
}

/** The value of the option of `select` whose text satisfies `predicate`, or fails. */
export async function optionValue(select, predicate, what) {
  const options = await select.locator("option").evaluateAll((os) => os.map((o) => [o.value, o.textContent]));
  const found = options.find(([, text]) => predicate(text || ""));
  check(found, `${what}: no such option among ${JSON.stringify(options.map(([, t]) => t))}`);
  return found[0];
}

/**
 * The text that describes `control` (its aria-describedby elements, visible ones only).
 */
export async function description(control) {
  return control.evaluate((e) =>
    (e.getAttribute("aria-describedby") || "")
      .split(/\s+/)
      .map((id) => document.getElementById(id))
      .filter((n) => n && !n.hidden)
      .map((n) => n.textContent)
      .join(" "));
}
