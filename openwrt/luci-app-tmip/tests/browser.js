// Headless Chromium for the view tests: Debian's /usr/bin/chromium driven by
// playwright-core, a fresh profile, the flags that keep it off the network.
'use strict';
const { chromium } = require('playwright-core');
const fs = require('fs');
const os = require('os');
const path = require('path');

// Open `url`, wait until the stand-in rendered the view, run `fn(page,
// errors)`, close everything; print fn's result as JSON. Exit 1 on failure.
exports.withView = function (url, fn) {
  (async () => {
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
      // Playwright waits 30 s for a step; the Rust test stretches that
      // where everything runs slower (the lab's emulated guest).
      const scale = Number(process.env.TMIP_TIME_SCALE) || 1;
      page.setDefaultTimeout(30000 * scale);
      const errors = [];
      page.on('pageerror', (e) => errors.push(String(e)));
      await page.goto(url);
      await page.waitForSelector('body[data-rendered], body[data-error]', { timeout: 20000 * scale });
      const err = await page.getAttribute('body', 'data-error');
      if (err) throw new Error('view failed: ' + err);
      const result = await fn(page);
      result.errors = errors;
      console.log(JSON.stringify(result));
    } finally {
      await ctx.close();
      fs.rmSync(profile, { recursive: true, force: true });
    }
  })().catch((e) => { console.error(e); process.exit(1); });
};

// page.screenshot, tried three times: under the lab's emulation Chromium's
// compositor sometimes answers Page.captureScreenshot with "Unable to
// capture screenshot" while the page itself is fine.
exports.screenshot = async function (page, options) {
  const scale = Number(process.env.TMIP_TIME_SCALE) || 1;
  for (let attempt = 1; ; attempt++) {
    try {
      return await page.screenshot(options);
    } catch (e) {
      if (attempt >= 3) throw e;
      console.error(`screenshot attempt ${attempt} failed (${e.message.split('\n')[0]}), retrying`);
      await page.waitForTimeout(1000 * scale);
    }
  }
};
