// The status view in headless Chromium: node status.test.js URL SCREENSHOT.png
// Prints what the picture shows as JSON (nodes, arrows, handover bars per
// instance) for tests/luci_views.rs to compare with the stations.
'use strict';
const { withView, screenshot } = require('./browser');

const [url, shot] = process.argv.slice(2);
withView(url, async (page) => {
  const instances = await page.evaluate(() => Array.from(document.querySelectorAll('[data-instance]')).map((d) => ({
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
  await screenshot(page, { path: shot, fullPage: true });
  return { instances };
});
