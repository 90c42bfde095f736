// The settings view in headless Chromium: node settings.test.js URL SCREENSHOT.png
// 1. Save the untouched form (the page lists each section's options); 2. an invalid pool entry is refused with a
// message; 3. change main's lease_time and Save. Prints each result as JSON
// for tests/luci_views.rs, which checks the UCI file.
'use strict';
const { withView, screenshot } = require('./browser');

const [url, shot] = process.argv.slice(2);
withView(url, async (page) => {
  const shown = await page.evaluate(() => ({
    enabled: Array.from(document.querySelectorAll('[id$=".enabled"]')).map((w) => [w.id, w.checked]),
    options: document.querySelectorAll('[data-option]').length,
    sections: Array.from(document.querySelectorAll('[data-section]')).map((s) =>
      [s.dataset.section, Array.from(s.querySelectorAll('[data-option]')).map((o) => o.dataset.option)]),
  }));
  // The picture for docs/: the page down to the end of section cn2 (the
  // sections with every key below it would only make it long).
  const bottom = await page.evaluate(() => {
    const s = document.querySelector('[data-section="cn2"]');
    return s ? Math.ceil(s.getBoundingClientRect().bottom + window.scrollY + 10) : 0;
  });
  await screenshot(page, bottom > 0
    ? { path: shot, fullPage: true, clip: { x: 0, y: 0, width: 1000, height: bottom } }
    : { path: shot, fullPage: true });
  const untouched = await page.evaluate(() => LuciStandin.map.save());
  await page.fill('[id="cbid.tmip.main.addr_pool"]', 'mob0 * *\nwlan0 1.2.3');
  const invalid = await page.evaluate(() => LuciStandin.map.save());
  const message = await page.textContent('[id="cbid.tmip.main.addr_pool.error"]');
  await page.fill('[id="cbid.tmip.main.addr_pool"]', 'mob0 * *');
  await page.fill('[id="cbid.tmip.main.lease_time"]', '7200');
  const edited = await page.evaluate(() => LuciStandin.map.save());
  return { shown, untouched, invalid, message, edited };
});
