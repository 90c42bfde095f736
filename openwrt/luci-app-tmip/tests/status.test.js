// Drives the status view in headless Chromium (Debian's /usr/bin/chromium
// through playwright-core): node status.test.js URL SCREENSHOT.png
// Prints what the picture shows as JSON (nodes, arrows, handover bars per
// instance) for tests/luci_views.rs to compare with the stations.
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
    const seen = await page.evaluate(() => Array.from(document.querySelectorAll('[data-instance]')).map((d) => ({
      object: d.getAttribute('data-instance'),
      cns: Array.from(d.querySelectorAll('[data-node=cn]')).map((n) => ({ addr: n.getAttribute('data-addr'), me: n.getAttribute('data-me') === '1' })),
      mlr: Array.from(d.querySelectorAll('[data-node=mlr]')).length,
      stations: Array.from(d.querySelectorAll('[data-node=station]')).map((n) => ({
        mac: n.getAttribute('data-mac'), state: n.getAttribute('data-state'),
        at: n.getAttribute('data-at'), parent: n.getAttribute('data-parent') })),
      arrows: Array.from(d.querySelectorAll('[data-arrow]')).map((n) => ({
        mac: n.getAttribute('data-arrow'), from: n.getAttribute('data-from'), to: n.getAttribute('data-to') })),
      handovers: Array.from(d.querySelectorAll('[data-handover]')).map((n) => ({
        mac: n.getAttribute('data-handover'), from: n.getAttribute('data-from'), ms: Number(n.getAttribute('data-ms')) })),
    })));
    await page.screenshot({ path: shot, fullPage: true });
    console.log(JSON.stringify({ instances: seen, errors }));
  } finally {
    await ctx.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
})().catch((e) => { console.error(e); process.exit(1); });
