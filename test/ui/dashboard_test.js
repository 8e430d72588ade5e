// The dashboard (/ui) in headless Chromium: Bookinfo on `meshbox run` (examples/bookinfo/mesh.toml,
// its commands pointed at the built services, its gateway on a free port), load through the
// gateway, then the page must show productpage → reviews v1, v2 and v3 edges with non-zero
// rates and an mTLS lock (read from the SVG's data-* attributes), and the tables must list
// Bookinfo's services. Saves a screenshot (its path is printed). Exit 0 pass, 1 fail, 77 skip.
//
// Env: MESHBOX_BIN, PRODUCTPAGE_BIN, DETAILS_BIN, REVIEWS_BIN, RATINGS_BIN, SOURCE_DIR, OUT_DIR.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const net = require('net');
const http = require('http');
const {spawn} = require('child_process');

const DEADLINE_MS = 20000;
const CHROMIUM = '/usr/bin/chromium';

function fail(msg) { throw new Error(msg); }
const sleep = ms => new Promise(r => setTimeout(r, ms));

async function eventually(what, fn, ms = DEADLINE_MS) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    try { if (await fn()) return; } catch (e) { last = e; }
    await sleep(100);
  }
  fail(`${what}: not within ${ms} ms${last ? ' (' + last.message + ')' : ''}`);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
    s.on('error', reject);
  });
}

function get(url, agent) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, {agent, timeout: 5000}, res => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

async function main() {
  let chromium;
  try {
    ({chromium} = require('playwright-core'));
  } catch (e) {
    console.log('playwright-core is not installed (npm ci in test/ui): skipped');
    return 77;
  }
  if (!fs.existsSync(CHROMIUM)) {
    console.log(`${CHROMIUM} is missing: skipped`);
    return 77;
  }
  const env = name => process.env[name] || fail(`environment variable ${name} unset`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshbox-ui-'));
  let mesh, browser, loadOn = true;
  const load = [];
  try {
    let text = fs.readFileSync(path.join(env('SOURCE_DIR'), 'examples/bookinfo/mesh.toml'), 'utf8');
    for (const [prog, bin] of [['meshbox-productpage', 'PRODUCTPAGE_BIN'],
                               ['meshbox-details', 'DETAILS_BIN'],
                               ['meshbox-reviews', 'REVIEWS_BIN'],
                               ['meshbox-ratings', 'RATINGS_BIN']])
      text = text.split(`command = ["${prog}"`).join(`command = [${JSON.stringify(env(bin))}`);
    const port = await freePort();
    const before = text;
    text = text.replace('port = 8080, bind = "127.0.0.1"', `port = ${port}, bind = "127.0.0.1"`);
    if (text === before) fail('no gateway on port 8080 in examples/bookinfo/mesh.toml');
    fs.writeFileSync(path.join(dir, 'mesh.toml'), text);
    const ready = path.join(dir, 'ready');
    const log = fs.openSync(path.join(dir, 'meshbox.log'), 'w');
    mesh = spawn(env('MESHBOX_BIN'),
                 ['run', path.join(dir, 'mesh.toml'), '--state-dir', path.join(dir, 'state'),
                  '--admin', '127.0.0.1:0', '--ready-file', ready, '--workers', '2'],
                 {stdio: ['ignore', log, log]});
    let admin;
    await eventually('meshbox run ready', () => {
      const m = fs.existsSync(ready) && /^admin (\S+)/m.exec(fs.readFileSync(ready, 'utf8'));
      if (m) admin = m[1];
      return !!m;
    });
    const gateway = `http://127.0.0.1:${port}/productpage`;
    await eventually('the product page through the gateway', async () => await get(gateway) === 200);

    // Load: two clients back to back on keep-alive connections, until the end.
    const agent = new http.Agent({keepAlive: true, maxSockets: 2});
    for (let i = 0; i < 2; i++)
      load.push((async () => { while (loadOn) await get(gateway, agent).catch(() => sleep(50)); })());

    browser = await chromium.launch({executablePath: CHROMIUM,
                                     args: ['--no-sandbox', '--disable-gpu', '--no-proxy-server']});
    const page = await browser.newPage({viewport: {width: 1400, height: 1000}});
    const errors = [];
    page.on('pageerror', e => errors.push(e.message));
    page.on('requestfailed', r => errors.push('request failed: ' + r.url()));
    const started = Date.now();
    await page.goto(`http://${admin}/ui`);
    // productpage → reviews v1, v2, v3, each moving.
    const edges = async () => page.$$eval('g.edge', gs => gs.map(g => Object.assign({}, g.dataset)));
    try {
      await page.waitForFunction(() => ['reviews-v1', 'reviews-v2', 'reviews-v3'].every(d => {
        const g = document.querySelector(
            `g.edge[data-source="productpage-v1"][data-destination="${d}"]`);
        return g && Number(g.dataset.rate) > 0;
      }), null, {timeout: DEADLINE_MS, polling: 200});
    } catch (e) {
      fail(`the graph never showed productpage → reviews v1/v2/v3 moving: ${JSON.stringify(await edges())}`);
    }
    console.log(`graph moving after ${Date.now() - started} ms`);
    const seen = await edges();
    for (const v of ['v1', 'v2', 'v3']) {
      const e = seen.find(x => x.source === 'productpage-v1' && x.destination === `reviews-${v}`);
      if (e.destinationVersion !== v) fail(`reviews-${v}: version ${e.destinationVersion}`);
      if (e.mtls !== 'true') fail(`productpage → reviews-${v} is not shown as mTLS`);
      if (!(Number(e.p99) > 0)) fail(`productpage → reviews-${v}: no p99 (${e.p99})`);
      console.log(`productpage → reviews-${v}: ${Number(e.rate).toFixed(1)} rps, ` +
                  `${e.errorPct}% errors, p99 ${e.p99} ms`);
    }
    // The gateway is a node; Bookinfo's services are in the table.
    if (!await page.$('g.node.gateway')) fail('no gateway node');
    if (!await page.$('g.edge .lock')) fail('no mTLS lock drawn');
    const services = await page.textContent('#services');
    for (const s of ['productpage', 'reviews', 'ratings', 'details'])
      if (!services.includes(s)) fail(`services table lacks ${s}: ${services}`);
    if (!(await page.textContent('#routes')).includes('productpage')) fail('routes table empty');
    if (errors.length) fail('page errors: ' + errors.join('; '));
    const out = process.env.OUT_DIR || dir;
    fs.mkdirSync(out, {recursive: true});
    const png = path.join(out, 'dashboard.png');
    await page.screenshot({path: png, fullPage: true});
    console.log(`screenshot: ${png}`);
    return 0;
  } catch (e) {
    console.error('FAIL: ' + e.message);
    const log = path.join(dir, 'meshbox.log');
    if (fs.existsSync(log)) console.error(fs.readFileSync(log, 'utf8').slice(-3000));
    return 1;
  } finally {
    loadOn = false;
    await Promise.all(load);
    if (browser) await browser.close();
    if (mesh && mesh.exitCode === null) {
      const exited = new Promise(r => mesh.once('exit', r));
      mesh.kill('SIGTERM');
      await Promise.race([exited, sleep(10000).then(() => mesh.kill('SIGKILL'))]);
    }
    fs.rmSync(dir, {recursive: true, force: true});
  }
}

main().then(code => process.exit(code), e => { console.error(e); process.exit(1); });
