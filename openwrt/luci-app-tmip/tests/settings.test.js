// Drives the settings view in headless Chromium (Debian's /usr/bin/chromium
// through playwright-core): node settings.test.js URL SCREENSHOT.png
// 1. Save the untouched form; 2. an invalid pool entry is refused with a
// message; 3. change main's lease_time and Save. Prints each result as JSON
// for tests/luci_views.rs, which checks the UCI file.
'use strict';
const { chromium } = require('playwright-core');
const fs = require('fs');
const os = require('os');
const path = require('path');

(async () => {
  const [url, shot] = process.argv.slice(2);
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'tmip-chromium-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1000, height: 800 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await ctx.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(url);
    await page.waitForSelector('body[data-rendered], body[data-error]', { timeout: 20000 });
    const err = await page.getAttribute('body', 'data-error');
    if (err) throw new Error('view failed: ' + err);
    const shown = await page.evaluate(() => ({
      enabled: Array.from(document.querySelectorAll('[id$=".enabled"]')).map((w) => [w.id, w.checked]),
      options: document.querySelectorAll('[data-option]').length,
    }));
    await page.screenshot({ path: shot, fullPage: true });
    const untouched = await page.evaluate(() => LuciStandin.map.save());
    await page.fill('[id="cbid.tmip.main.addr_pool"]', 'mob0 * *\nwlan0 1.2.3');
    const invalid = await page.evaluate(() => LuciStandin.map.save());
    const message = await page.textContent('[id="cbid.tmip.main.addr_pool.error"]');
    await page.fill('[id="cbid.tmip.main.addr_pool"]', 'mob0 * *');
    await page.fill('[id="cbid.tmip.main.lease_time"]', '7200');
    const edited = await page.evaluate(() => LuciStandin.map.save());
    console.log(JSON.stringify({ shown, untouched, invalid, message, edited, errors }));
  } finally {
    await ctx.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
})().catch((e) => { console.error(e); process.exit(1); });
