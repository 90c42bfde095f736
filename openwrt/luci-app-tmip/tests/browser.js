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

// page.screenshot. A picture taller than about 1,600 px fails under the
// lab's emulation (Chromium there answers "Unable to capture screenshot"
// for 1,906 px, full page, clipped or as one tall viewport, every time,
// and takes 1,600 px clipped): then the top 1,600 px are taken and stderr
// says so. The picture is for docs/; what the tests assert is the DOM.
const TALLEST = 1600;
exports.screenshot = async function (page, options) {
  try {
    return await page.screenshot(options);
  } catch (e) {
    if (!/Unable to capture screenshot/.test(e.message)) throw e;
    const width = (options.clip && options.clip.width) || page.viewportSize().width;
    console.error(`screenshot failed (${e.message.split('\n')[0]}); taking the top ${TALLEST} px`);
    return await page.screenshot({ ...options, fullPage: true, clip: { x: 0, y: 0, width, height: TALLEST } });
  }
};
