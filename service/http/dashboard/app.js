// The ckpt dashboard: jobs, a job's live page, an item, and a search box, over ckptd's
// JSON API (/api/v1, docs/observability.md). Plain JavaScript, no build step and no
// dependency: ckptd serves these files from its own binary.
'use strict';

(() => {
  // ------------------------------------------------------------------ DOM helpers

  const $ = (selector, root = document) => root.querySelector(selector);

  // h('div', {class: 'x', onclick: f, dataset: {a: 1}}, child, ...): strings become text
  // nodes, so nothing from the server is ever parsed as HTML.
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    append(el, children);
    return el;
  }
  function append(el, children) {
    for (const child of [children].flat(Infinity)) {
      if (child === undefined || child === null || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }
  const SVG = 'http://www.w3.org/2000/svg';
  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    for (const child of children.flat()) {
      if (child !== undefined && child !== null) {
        el.append(child instanceof Node ? child : document.createTextNode(String(child)));
      }
    }
    return el;
  }

  let toastTimer = 0;
  function toast(message, bad = false) {
    const el = $('#toast');
    el.textContent = message;
    el.className = 'toast show' + (bad ? ' bad' : '');
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { el.className = 'toast'; }, bad ? 6000 : 3000);
  }

  // ------------------------------------------------------------------ formatting

  const n = (x) => Number(x || 0);
  const fmtInt = (x) => n(x).toLocaleString('en-US');
  // "1.500s" (protobuf JSON Duration) -> seconds.
  const seconds = (d) => (d === undefined || d === null || d === '' ? null : parseFloat(d));
  function fmtDur(sec) {
    if (sec === null || sec === undefined || !isFinite(sec)) return '—';
    if (sec < 1) return `${Math.round(sec * 1000)} ms`;
    if (sec < 60) return `${sec.toFixed(sec < 10 ? 1 : 0)} s`;
    const m = Math.floor(sec / 60);
    if (m < 60) return `${m}m ${String(Math.floor(sec % 60)).padStart(2, '0')}s`;
    const hours = Math.floor(m / 60);
    if (hours < 48) return `${hours}h ${String(m % 60).padStart(2, '0')}m`;
    return `${Math.floor(hours / 24)}d ${String(hours % 24).padStart(2, '0')}h`;
  }
  const ago = (ts) => (ts ? `${fmtDur(Math.max(0, (Date.now() - Date.parse(ts)) / 1000))} ago` : '—');
  function fmtRate(r) {
    r = n(r);
    if (r === 0) return '0/s';
    return `${r >= 100 ? r.toFixed(0) : r >= 10 ? r.toFixed(1) : r.toFixed(2)}/s`;
  }
  const pct = (x) => `${n(x).toFixed(1)}%`;
  const shortStatus = (s) => String(s || '').replace(/^(JOB_STATUS|ITEM_STATE|WORKER_STATE)_/, '');
  function fmtBytes(b) {
    b = n(b);
    if (b < 1024) return `${b} B`;
    const units = ['KiB', 'MiB', 'GiB', 'TiB'];
    let i = -1;
    do { b /= 1024; i++; } while (b >= 1024 && i < units.length - 1);
    return `${b.toFixed(1)} ${units[i]}`;
  }
  const keyText = (key) => (key && key.name !== undefined ? key.name : `#${n(key && key.index)}`);
  const enc = encodeURIComponent;
  function itemHref(jobId, step, key) {
    const which = key && key.name !== undefined ? `name=${enc(key.name)}` : `index=${n(key && key.index)}`;
    return `#/jobs/${enc(jobId)}/item?step=${enc(step || '')}&${which}`;
  }
  function decodeBytes(b64) {
    if (!b64) return { size: 0, text: '' };
    const raw = atob(b64);
    const printable = /^[\x09\x0a\x0d\x20-\x7e]*$/.test(raw);
    return { size: raw.length, text: printable ? raw : `(binary) ${Array.from(raw.slice(0, 48), (c) => c.charCodeAt(0).toString(16).padStart(2, '0')).join(' ')}${raw.length > 48 ? ' …' : ''}` };
  }

  // ------------------------------------------------------------------ API

  const api = {
    token: sessionStorage.getItem('ckpt.token') || '',
    headers(json) {
      const headers = { Accept: 'application/json' };
      if (this.token) headers.Authorization = `Bearer ${this.token}`;
      if (json) headers['Content-Type'] = 'application/json';
      return headers;
    },
    async call(method, path, body) {
      const res = await fetch(path, {
        method, headers: this.headers(body !== undefined),
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      let data = null;
      try { data = await res.json(); } catch (e) { data = null; }
      if (!res.ok) {
        const error = new Error((data && data.error && data.error.message) || `${res.status} ${res.statusText}`);
        error.status = res.status;
        if (res.status === 401) askForToken();
        throw error;
      }
      return data;
    },
    get(path) { return this.call('GET', path); },
    post(path, body) { return this.call('POST', path, body || {}); },
  };

  // The event stream read with fetch (EventSource cannot send a bearer token).
  // onJob(GetJobResponse) for each change; resolves with the end event's error object,
  // or rejects when the connection drops.
  async function streamEvents(jobId, onJob, signal) {
    const res = await fetch(`/api/v1/jobs/${enc(jobId)}/events`, { headers: api.headers(false), signal });
    if (!res.ok) {
      let message = `${res.status}`;
      try { message = (await res.json()).error.message; } catch (e) { /* not JSON */ }
      const error = new Error(message);
      error.status = res.status;
      throw error;
    }
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) throw new Error('the event stream closed');
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let name = '';
        let data = '';
        for (const line of block.split('\n')) {
          if (line.startsWith('event: ')) name = line.slice(7);
          else if (line.startsWith('data: ')) data += line.slice(6);
        }
        if (name === 'job') onJob(JSON.parse(data));
        else if (name === 'end') return JSON.parse(data).error;
      }
    }
  }

  // ------------------------------------------------------------------ who am I

  let me = null;
  async function loadMe() {
    try {
      me = await api.get('/api/v1/whoami');
    } catch (e) {
      me = null;
    }
    const el = $('#whoami');
    el.textContent = '';
    if (me && me.authentication) {
      append(el, [me.principal, h('span', { class: 'role', dataset: { testid: 'role' } }, me.role)]);
    }
  }
  // Whether this principal may call `rpc` on job `jobId` (the server checks again).
  function can(rpc, jobId) {
    if (!me || !(me.allowed || []).includes(rpc)) return false;
    return !me.jobPrefix || String(jobId).startsWith(me.jobPrefix);
  }

  function askForToken(message) {
    const dialog = $('#login');
    $('#login-error').textContent = message || (api.token ? 'That token was not accepted.' : '');
    if (!dialog.open) dialog.showModal();
  }
  $('#login-form').addEventListener('submit', async () => {
    api.token = $('#login-token').value.trim();
    sessionStorage.setItem('ckpt.token', api.token);
    $('#login-token').value = '';
    await loadMe();
    if (!me) { askForToken(); return; }
    route();
  });

  // ------------------------------------------------------------------ page lifecycle

  // What the current view started (timers, streams), stopped when it is left.
  let cleanups = [];
  function onLeave(fn) { cleanups.push(fn); }
  function every(ms, fn) { const id = setInterval(fn, ms); onLeave(() => clearInterval(id)); }
  function setLive(mode, text) {
    const el = $('#live');
    el.className = `live ${mode}`;
    $('#live-text').textContent = text;
  }
  function crumbs(...parts) {
    const nav = $('#crumbs');
    nav.textContent = '';
    parts.forEach((part, i) => {
      if (i > 0) nav.append(h('span', { class: 'sep' }, '/'));
      nav.append(part.href ? h('a', { href: part.href }, part.text) : h('span', {}, part.text));
    });
  }
  function mount(...children) {
    const main = $('#main');
    main.textContent = '';
    append(main, children);
  }
  function fail(error) {
    mount(h('div', { class: 'panel empty', dataset: { testid: 'error' } }, error.message));
  }

  function route() {
    for (const fn of cleanups) fn();
    cleanups = [];
    setLive('', 'idle');
    const hash = location.hash.slice(1) || '/';
    const [path, query = ''] = hash.split('?');
    const params = new URLSearchParams(query);
    const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
    if (parts.length === 0) return jobsView(params);
    if (parts[0] === 'jobs' && parts.length === 2) return jobView(parts[1]);
    if (parts[0] === 'jobs' && parts.length === 3 && parts[2] === 'item') return itemView(parts[1], params);
    fail(new Error(`No page at ${hash}`));
  }
  window.addEventListener('hashchange', route);

  // ------------------------------------------------------------------ shared pieces

  function statusPill(status, testid) {
    const name = shortStatus(status);
    return h('span', { class: `pill ${name}`, dataset: { testid: testid || 'status' } }, name);
  }
  function progressBar(p, big) {
    const total = Math.max(n(p.total), 1);
    const width = (x) => `${(100 * n(x)) / total}%`;
    const bar = h('div', { class: `bar${big ? ' big' : ''}`, title: `${fmtInt(p.completed)} completed, ${fmtInt(p.failed)} failed, ${fmtInt(p.leased)} leased of ${fmtInt(p.total)}` },
      h('div', { class: 'done' }), h('div', { class: 'failed' }), h('div', { class: 'leased' }));
    bar.children[0].style.width = width(p.completed);
    bar.children[1].style.width = width(p.failed);
    bar.children[2].style.width = width(p.leased);
    return bar;
  }
  function labelChips(labels) {
    const entries = Object.entries(labels || {});
    return entries.length ? h('div', { class: 'labels' }, entries.map(([k, v]) => h('span', { class: 'label' }, `${k}=${v}`))) : null;
  }
  // Runs an operator action; toasts what it returns (or `label`), or why it failed.
  async function act(label, fn) {
    try {
      toast((await fn()) || label);
    } catch (e) {
      toast(`${label} failed: ${e.message}`, true);
    }
  }

  // ------------------------------------------------------------------ jobs list

  const STATUSES = ['', 'RUNNING', 'PAUSED', 'COMPLETED', 'FAILED', 'STOPPED'];

  function jobsView(params) {
    crumbs({ text: 'Jobs' });
    const status = params.get('status') || '';
    const labelText = params.get('label') || '';
    const setFilter = (key, value) => {
      const next = new URLSearchParams(params);
      if (value) next.set(key, value); else next.delete(key);
      location.hash = `#/?${next}`;
    };
    const seg = h('div', { class: 'seg' }, STATUSES.map((st) => h('button', {
      class: st === status ? 'on' : '', dataset: { testid: `filter-${st || 'ALL'}` },
      onclick: () => setFilter('status', st),
    }, st ? st.toLowerCase() : 'all')));
    const labelInput = h('input', { class: 'filter', placeholder: 'label filter: team=search', value: labelText, dataset: { testid: 'label-filter' } });
    labelInput.addEventListener('change', () => setFilter('label', labelInput.value.trim()));
    const body = h('tbody');
    const count = h('span', { class: 'sub' });
    mount(
      h('div', { class: 'toolbar' }, h('h1', {}, 'Jobs'), count, h('div', { class: 'grow' }), seg, labelInput),
      h('div', { class: 'panel' }, h('table', {},
        h('thead', {}, h('tr', {}, h('th', {}, 'Job'), h('th', {}, 'Status'), h('th', {}, 'Progress'),
          h('th', { class: 'num' }, 'Done / Total'), h('th', { class: 'num' }, 'Failed'), h('th', { class: 'num' }, 'Rate'),
          h('th', { class: 'num' }, 'ETA'), h('th', { class: 'num' }, 'Age'))),
        body)));

    const query = new URLSearchParams({ limit: '200' });
    if (status) query.set('status', `JOB_STATUS_${status}`);
    for (const pair of labelText.split(',').map((x) => x.trim()).filter(Boolean)) {
      const eq = pair.indexOf('=');
      if (eq > 0) query.set(`labels.${pair.slice(0, eq)}`, pair.slice(eq + 1));
    }
    const load = async () => {
      let answer;
      try {
        answer = await api.get(`/api/v1/jobs?${query}`);
      } catch (e) {
        body.textContent = '';
        body.append(h('tr', {}, h('td', { colspan: 8, class: 'empty' }, e.message)));
        setLive('off', 'error');
        return;
      }
      const jobs = answer.jobs || [];
      count.textContent = `${jobs.length}${answer.nextPageToken ? '+' : ''} shown, newest first`;
      body.textContent = '';
      if (jobs.length === 0) body.append(h('tr', {}, h('td', { colspan: 8, class: 'empty' }, 'No jobs match.')));
      for (const job of jobs) body.append(jobRow(job));
      setLive('on', 'every 5 s');
    };
    load();
    every(5000, load);
  }

  function jobRow(job) {
    const p = job.progress || {};
    const over = ['COMPLETED', 'FAILED', 'STOPPED'].includes(shortStatus(job.status));
    const row = h('tr', { class: 'link', dataset: { testid: 'job-row', jobId: job.jobId },
      onclick: () => { location.hash = `#/jobs/${enc(job.jobId)}`; } },
      h('td', { class: 'jobcell' }, h('div', { class: 'id' }, h('a', { href: `#/jobs/${enc(job.jobId)}` }, job.jobId)),
        job.displayName ? h('div', { class: 'name' }, job.displayName) : null, labelChips(job.labels)),
      h('td', {}, statusPill(job.status)),
      h('td', {}, h('div', { class: 'progresscell' }, progressBar(p), h('span', { class: 'pct' }, pct(p.percent)))),
      h('td', { class: 'num' }, `${fmtInt(p.completed)} / ${fmtInt(p.total)}`),
      h('td', { class: 'num' }, n(p.failed) ? h('span', { class: 'errmsg' }, fmtInt(p.failed)) : '0'),
      h('td', { class: 'num' }, over ? '—' : fmtRate(p.recentRate)),
      h('td', { class: 'num' }, over ? '—' : fmtDur(seconds(p.eta))),
      h('td', { class: 'num', title: job.createTime }, ago(job.createTime)));
    return row;
  }

  // ------------------------------------------------------------------ job page

  function jobView(jobId) {
    crumbs({ text: 'Jobs', href: '#/' }, { text: jobId });
    const view = { jobId, job: null, recent: [], samples: [], failedSeen: -1, workersSeen: -1 };
    const head = h('div', { class: 'jobhead' });
    const cards = h('div', { class: 'cards' });
    const overall = h('div');
    const steps = h('tbody');
    const chart = s('svg', { class: 'chart', viewBox: '0 0 800 220', preserveAspectRatio: 'none', 'data-testid': 'throughput-chart' });
    const chartNote = h('div', { class: 'chartnote' });
    const errors = h('div', { dataset: { testid: 'error-groups' } });
    const workers = h('div');
    const recentPanel = h('div');
    const states = h('div');
    mount(
      head,
      h('div', { class: 'panel' }, overall, cards),
      h('div', { class: 'grid two', style: null },
        h('div', { class: 'stack' },
          h('div', { class: 'panel' }, h('h2', {}, 'Throughput'), chart, chartNote),
          h('div', { class: 'panel' }, h('h2', {}, 'Failed items by error'), errors),
          h('div', { class: 'panel' }, h('h2', {}, 'Workers'), workers)),
        h('div', { class: 'stack' },
          h('div', { class: 'panel' }, h('h2', {}, 'Steps'), h('table', {}, h('thead', {}, h('tr', {},
            h('th', {}, 'Step'), h('th', {}, 'Progress'), h('th', { class: 'num' }, 'Done / Total'),
            h('th', { class: 'num' }, 'Failed'), h('th', { class: 'num' }, 'Rate'))), steps)),
          h('div', { class: 'panel' }, h('h2', {}, 'Recent completions'), recentPanel),
          h('div', { class: 'panel' }, h('h2', {}, 'State blobs'), states))));
    Object.assign(view, { head, cards, overall, steps, chart, chartNote, errors, workers, recentPanel, states });

    const controller = new AbortController();
    onLeave(() => controller.abort());
    const apply = (answer) => {
      view.job = answer.job;
      view.recent = answer.recentCompletions || [];
      view.samples.push({ t: Date.now(), c: n(answer.job.progress && answer.job.progress.completed) });
      if (view.samples.length > 20000) view.samples.splice(0, view.samples.length - 20000);
      renderJob(view);
    };
    (async () => {
      try {
        const history = await api.get(`/api/v1/jobs/${enc(jobId)}/throughput`);
        const earlier = (history.samples || []).map((x) => ({ t: Date.parse(x.time), c: n(x.completed) }));
        view.samples = earlier.concat(view.samples).sort((a, b) => a.t - b.t);
      } catch (e) { /* no history yet: the chart starts now */ }
      try {
        apply(await api.get(`/api/v1/jobs/${enc(jobId)}`));
      } catch (e) {
        fail(e);
        return;
      }
      follow(view, apply, controller.signal);
    })();
    every(2000, () => view.job && renderChart(view));
    every(5000, () => view.job && loadWorkers(view));
    every(15000, () => view.job && loadStates(view));
  }

  // Follows the job's event stream, reconnecting after a drop, until it ends.
  async function follow(view, apply, signal) {
    for (let delay = 1000; !signal.aborted;) {
      try {
        setLive('on', 'live');
        const end = await streamEvents(view.jobId, (answer) => { delay = 1000; apply(answer); }, signal);
        setLive('', end.status === 'OK' ? 'finished' : shortStatus(end.status).toLowerCase());
        if (end.status !== 'UNAVAILABLE') return;
      } catch (e) {
        if (signal.aborted) return;
        setLive('off', e.status === 429 ? 'too many viewers' : 'reconnecting');
        if (e.status === 401 || e.status === 403 || e.status === 404) return;
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 15000);
    }
  }

  function renderJob(view) {
    const { job } = view;
    const p = job.progress || {};
    const status = shortStatus(job.status);
    const over = ['COMPLETED', 'FAILED', 'STOPPED'].includes(status);

    // The header is rebuilt only when what it shows changes, so a button is never
    // replaced under the pointer by an event about progress.
    const signature = JSON.stringify([job.status, job.statusReason, job.stage, job.sealed, job.displayName,
      job.labels, me && me.role]);
    view.elapsed = view.elapsed || h('span');
    view.elapsed.textContent = `elapsed ${fmtDur(seconds(p.elapsed))}`;
    if (signature !== view.headSignature) {
      view.headSignature = signature;
      renderHead(view, job, status);
    }

    view.overall.textContent = '';
    append(view.overall, h('div', { class: 'progresscell' }, progressBar(p, true),
      h('span', { class: 'pct', dataset: { testid: 'stat-percent' } }, pct(p.percent))));
    const card = (key, value, testid, tone, small) => h('div', { class: `card ${tone || ''}` },
      h('div', { class: 'k' }, key), h('div', { class: 'v' }, h('span', { dataset: { testid } }, value), small ? h('small', {}, ` ${small}`) : null));
    view.cards.textContent = '';
    append(view.cards, [
      card('Completed', fmtInt(p.completed), 'stat-completed', 'green', `/ ${fmtInt(p.total)}`),
      card('Failed', fmtInt(p.failed), 'stat-failed', n(p.failed) ? 'red' : ''),
      card('Leased', fmtInt(p.leased), 'stat-leased', 'blue'),
      card('Pending', fmtInt(p.pending), 'stat-pending'),
      card('Total', fmtInt(p.total), 'stat-total'),
      card('Rate', over ? '—' : fmtRate(p.recentRate), 'stat-rate', '', 'last minute'),
      card('ETA', over ? '—' : status === 'PAUSED' ? 'paused' : fmtDur(seconds(p.eta)), 'stat-eta'),
      card('Workers', fmtInt(p.activeWorkers), 'stat-workers', '', 'active'),
      card('Item avg', fmtDur(seconds(p.itemTimeAvg)), 'stat-item-avg'),
      card('Item p50', fmtDur(seconds(p.itemTimeP50)), 'stat-item-p50'),
      card('Item p95', fmtDur(seconds(p.itemTimeP95)), 'stat-item-p95'),
    ]);

    view.steps.textContent = '';
    for (const step of job.stepProgress || []) {
      const sp = step.progress || {};
      view.steps.append(h('tr', { dataset: { testid: 'step-row', step: step.step } },
        h('td', {}, step.step),
        h('td', {}, h('div', { class: 'progresscell' }, progressBar(sp), h('span', { class: 'pct' }, pct(sp.percent)))),
        h('td', { class: 'num' }, `${fmtInt(sp.completed)} / ${fmtInt(sp.total)}`),
        h('td', { class: 'num' }, fmtInt(sp.failed)),
        h('td', { class: 'num' }, over ? '—' : fmtRate(sp.recentRate))));
    }

    view.recentPanel.textContent = '';
    if (view.recent.length === 0) {
      view.recentPanel.append(h('div', { class: 'empty' }, 'None yet.'));
    } else {
      view.recentPanel.append(h('table', { dataset: { testid: 'recent-completions' } },
        h('thead', {}, h('tr', {}, h('th', {}, 'Item'), h('th', {}, 'Step'), h('th', {}, 'Worker'), h('th', { class: 'num' }, 'When'))),
        h('tbody', {}, view.recent.map((r) => h('tr', {},
          h('td', {}, h('a', { href: itemHref(job.jobId, r.step, r.key), class: 'mono' }, keyText(r.key))),
          h('td', {}, r.step), h('td', { class: 'mono' }, r.workerId || '—'),
          h('td', { class: 'num', title: r.time }, ago(r.time)))))));
    }

    if (n(p.failed) !== view.failedSeen) { view.failedSeen = n(p.failed); loadErrors(view); }
    if (n(p.activeWorkers) !== view.workersSeen) { view.workersSeen = n(p.activeWorkers); loadWorkers(view); }
    if (!view.statesLoaded) { view.statesLoaded = true; loadStates(view); }
    renderChart(view);
  }

  function renderHead(view, job, status) {
    view.head.textContent = '';
    const actions = h('div', { class: 'actions' });
    const post = (what, body) => api.post(`/api/v1/jobs/${enc(job.jobId)}/${what}`, body);
    if (status === 'RUNNING' && can('PauseJob', job.jobId)) {
      actions.append(h('button', { class: 'warn', dataset: { testid: 'action-pause' },
        onclick: () => act('Paused', () => post('pause', { reason: 'paused from the dashboard' })) }, 'Pause'));
    }
    if (status === 'PAUSED' && can('ResumeJob', job.jobId)) {
      actions.append(h('button', { class: 'primary', dataset: { testid: 'action-resume' },
        onclick: () => act('Resumed', () => post('resume')) }, 'Resume'));
    }
    if ((status === 'RUNNING' || status === 'PAUSED') && can('StopJob', job.jobId)) {
      actions.append(h('button', { class: 'danger', dataset: { testid: 'action-stop' },
        onclick: () => window.confirm(`Stop ${job.jobId} for good? Workers finish their item and exit.`) &&
          act('Stopped', () => post('stop', { reason: 'stopped from the dashboard' })) }, 'Stop'));
    }
    append(view.head, [
      h('div', { class: 'titles' },
        h('h1', {}, h('span', { dataset: { testid: 'job-id' } }, job.jobId), statusPill(job.status, 'job-status')),
        job.statusReason ? h('div', { class: 'reason' }, job.statusReason) : null,
        h('div', { class: 'meta' },
          job.displayName ? h('span', {}, job.displayName) : null,
          job.stage ? h('span', {}, `stage: ${job.stage}`) : null,
          h('span', { title: job.createTime }, `created ${ago(job.createTime)}`),
          view.elapsed,
          h('span', {}, job.sealed ? 'sealed' : 'open for more items'),
          h('span', {}, `max ${job.maxAttempts} attempts, lease ${fmtDur(seconds(job.leaseTimeout))}`)),
        labelChips(job.labels)),
      actions]);
  }

  async function loadErrors(view) {
    const jobId = view.jobId;
    let answer;
    try {
      answer = await api.get(`/api/v1/jobs/${enc(jobId)}/items?state=ITEM_STATE_FAILED&errorGroups=20&limit=1&keysOnly=true`);
    } catch (e) {
      return;
    }
    const groups = answer.errorGroups || [];
    view.errors.textContent = '';
    if (groups.length === 0) {
      view.errors.append(h('div', { class: 'empty' }, 'No failed items.'));
      return;
    }
    const mayRetry = can('ResetItems', jobId) && shortStatus(view.job.status) !== 'STOPPED';
    view.errors.append(h('table', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'Error'), h('th', { class: 'num' }, 'Items'), mayRetry ? h('th', {}) : null)),
      h('tbody', {}, groups.map((g) => h('tr', { dataset: { testid: 'error-group', message: g.message } },
        h('td', { class: 'errmsg' }, g.message),
        h('td', { class: 'num', dataset: { testid: 'error-count' } }, fmtInt(g.count)),
        mayRetry ? h('td', { class: 'num' }, h('button', { class: 'small', dataset: { testid: 'retry-group' },
          onclick: (event) => {
            event.target.disabled = true;
            act(`Retrying ${fmtInt(g.count)} items`, async () => {
              const result = await api.post(`/api/v1/jobs/${enc(jobId)}/retry`, { errorMessage: g.message });
              return `${fmtInt(result.matched)} items are pending again`;
            });
          } }, 'Retry')) : null)))));
  }

  async function loadWorkers(view) {
    let answer;
    try {
      answer = await api.get(`/api/v1/jobs/${enc(view.jobId)}/workers`);
    } catch (e) {
      return;
    }
    const list = answer.workers || [];
    view.workers.textContent = '';
    if (list.length === 0) {
      view.workers.append(h('div', { class: 'empty' }, 'No workers registered.'));
      return;
    }
    view.workers.append(h('table', { dataset: { testid: 'workers' } },
      h('thead', {}, h('tr', {}, h('th', {}, 'Worker'), h('th', {}, 'Host'), h('th', { class: 'num' }, 'PID'), h('th', {}, 'State'),
        h('th', {}, 'Current items'), h('th', { class: 'num' }, 'Done'), h('th', { class: 'num' }, 'Failed'), h('th', { class: 'num' }, 'Heartbeat'))),
      h('tbody', {}, list.map((w) => {
        const current = w.currentItems || [];
        return h('tr', {},
          h('td', { class: 'mono' }, w.workerId), h('td', {}, w.hostname || '—'), h('td', { class: 'num' }, w.pid || '—'),
          h('td', {}, statusPill(w.state, 'worker-state')),
          h('td', { class: 'mono' }, current.length === 0 ? '—' : [
            current.slice(0, 4).map((k, i) => [i ? ', ' : '', h('a', { href: itemHref(view.jobId, w.currentStep, k) }, keyText(k))]),
            current.length > 4 ? ` +${current.length - 4}` : '']),
          h('td', { class: 'num' }, fmtInt(w.completed)), h('td', { class: 'num' }, fmtInt(w.failed)),
          h('td', { class: 'num', title: w.lastHeartbeat }, ago(w.lastHeartbeat)));
      }))));
  }

  async function loadStates(view) {
    let answer;
    try {
      answer = await api.get(`/api/v1/jobs/${enc(view.jobId)}/states`);
    } catch (e) {
      return;
    }
    const list = answer.states || [];
    view.states.textContent = '';
    if (list.length === 0) {
      view.states.append(h('div', { class: 'empty' }, 'No state blobs.'));
      return;
    }
    view.states.append(h('table', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', { class: 'num' }, 'Version'), h('th', { class: 'num' }, 'Updated'))),
      h('tbody', {}, list.map((st) => h('tr', {},
        h('td', { class: 'mono' }, st.name), h('td', { class: 'num' }, fmtInt(st.version)),
        h('td', { class: 'num', title: st.updateTime }, ago(st.updateTime)))))));
  }

  // Completions per second over time, from the samples (time, completed count) the page
  // has: the server's history of the job, then every event since the page opened.
  function renderChart(view) {
    const svg = view.chart;
    svg.textContent = '';
    const W = 800, H = 220, left = 44, bottom = 22, top = 10, right = 8;
    const now = Date.now();
    const samples = view.samples;
    const first = samples.length ? samples[0].t : now;
    // From the first sample (at least 30 s, at most an hour back), in about 60 buckets
    // of whole seconds.
    const span = Math.min(Math.max(now - first, 30e3), 3600e3);
    const bucket = Math.min(60e3, Math.max(2e3, Math.round(span / 60 / 1e3) * 1e3));
    const start = now - Math.floor(span / bucket) * bucket;
    // The completed count at time t, interpolated between the samples around it (the
    // server's are 5 s apart, events come as they happen); after the last, the last.
    let i = 0;
    const countAt = (t) => {
      while (i + 1 < samples.length && samples[i + 1].t <= t) i++;
      if (!samples.length || samples[i].t > t) return null;
      const next = samples[i + 1];
      if (!next) return samples[i].c;
      return samples[i].c + ((next.c - samples[i].c) * (t - samples[i].t)) / (next.t - samples[i].t);
    };
    const points = [];
    let prev = countAt(start);
    for (let t = start + bucket; t <= now + 1; t += bucket) {
      const c = countAt(t);
      if (prev !== null && c !== null) points.push({ t, r: Math.max(0, (c - prev) / (bucket / 1000)) });
      prev = c;
    }
    const defs = s('defs', {}, s('linearGradient', { id: 'rate-fill', x1: 0, y1: 0, x2: 0, y2: 1 },
      s('stop', { offset: '0%', 'stop-color': '#34d399', 'stop-opacity': 0.35 }),
      s('stop', { offset: '100%', 'stop-color': '#34d399', 'stop-opacity': 0.02 })));
    svg.append(defs);
    const maxRate = Math.max(1, ...points.map((p) => p.r));
    const niceMax = niceCeil(maxRate);
    const x = (t) => left + ((t - start) / (now - start || 1)) * (W - left - right);
    const y = (r) => top + (1 - r / niceMax) * (H - top - bottom);
    for (let k = 0; k <= 4; k++) {
      const r = (niceMax * k) / 4;
      svg.append(s('line', { class: 'grid-line', x1: left, x2: W - right, y1: y(r), y2: y(r) }));
      const label = r >= 10 || r === 0 ? r.toFixed(0) : r >= 1 ? r.toFixed(1) : r.toFixed(2);
      svg.append(s('text', { class: 'axis', x: left - 6, y: y(r) + 4, 'text-anchor': 'end' }, label));
    }
    for (let k = 0; k <= 4; k++) {
      const t = start + ((now - start) * k) / 4;
      const label = new Date(t).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: span < 600e3 ? '2-digit' : undefined });
      svg.append(s('text', { class: 'axis', x: x(t), y: H - 6, 'text-anchor': k === 0 ? 'start' : k === 4 ? 'end' : 'middle' }, label));
    }
    svg.dataset.points = String(points.length);
    if (points.length < 2) {
      svg.append(s('text', { class: 'note', x: W / 2, y: H / 2, 'text-anchor': 'middle' }, 'Collecting throughput…'));
    } else {
      const line = points.map((p, k) => `${k ? 'L' : 'M'}${x(p.t).toFixed(1)},${y(p.r).toFixed(1)}`).join(' ');
      const area = `${line} L${x(points[points.length - 1].t).toFixed(1)},${y(0)} L${x(points[0].t).toFixed(1)},${y(0)} Z`;
      svg.append(s('path', { class: 'area', d: area }), s('path', { class: 'line', d: line }));
    }
    const last = points.length ? points[points.length - 1].r : 0;
    const peak = Math.max(0, ...points.map((p) => p.r));
    view.chartNote.textContent = `items/s in ${bucket / 1000} s buckets; now ${fmtRate(last)}, peak ${fmtRate(peak)}`;
  }
  function niceCeil(x) {
    const p = Math.pow(10, Math.floor(Math.log10(x)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= x) return m * p;
    return 10 * p;
  }

  // ------------------------------------------------------------------ item page

  async function itemView(jobId, params) {
    const step = params.get('step') || '';
    const name = params.get('name');
    const key = name !== null ? { name } : { index: params.get('index') || '0' };
    crumbs({ text: 'Jobs', href: '#/' }, { text: jobId, href: `#/jobs/${enc(jobId)}` }, { text: `${step || 'first step'} ${keyText(key)}` });
    const query = new URLSearchParams({ step });
    if (name !== null) query.set('key.name', name); else query.set('key.index', key.index);
    let item;
    try {
      item = (await api.get(`/api/v1/jobs/${enc(jobId)}/item?${query}`)).item;
    } catch (e) {
      fail(e);
      return;
    }
    const result = item.result || {};
    const metrics = result.metrics || {};
    const error = item.lastError || {};
    const cursor = decodeBytes(item.cursor);
    const payload = decodeBytes(result.payload);
    const row = (k, v) => [h('div', { class: 'k' }, k), h('div', { class: 'v' }, v)];
    const state = shortStatus(item.state);
    const actions = h('div', { class: 'actions' });
    if (can('ResetItems', jobId) && ['FAILED', 'COMPLETED', 'LEASED'].includes(state)) {
      actions.append(h('button', { class: 'warn', dataset: { testid: 'action-reset-item' }, onclick: () => act('Item reset to pending', async () => {
        await api.post(`/api/v1/jobs/${enc(jobId)}/reset-items`, { step: item.step, keys: [item.key] });
        route();
      }) }, 'Reset to pending'));
    }
    const stages = Object.entries(metrics.stageTimes || {});
    mount(
      h('div', { class: 'jobhead' }, h('div', { class: 'titles' },
        h('h1', {}, h('span', { class: 'mono' }, keyText(item.key)), statusPill(item.state, 'item-state')),
        h('div', { class: 'meta' }, h('span', {}, `job `, h('a', { href: `#/jobs/${enc(jobId)}` }, jobId)), h('span', {}, `step ${item.step}`),
          h('span', { title: item.updateTime }, `updated ${ago(item.updateTime)}`))), actions),
      h('div', { class: 'grid two' },
        h('div', { class: 'stack' },
          h('div', { class: 'panel' }, h('h2', {}, 'Item'), h('div', { class: 'kv' },
            row('State', state), row('Attempts', h('span', { dataset: { testid: 'item-attempts' } }, fmtInt(item.attempts))),
            row('Worker', item.workerId || '—'), row('Lease token', n(item.leaseToken) ? item.leaseToken : '—'),
            row('Cursor', cursor.size ? h('pre', { class: 'blob' }, `${cursor.size} bytes\n${cursor.text}`) : '—'))),
          h('div', { class: 'panel' }, h('h2', {}, 'Last error'), error.message ? h('div', { class: 'kv' },
            row('Message', h('span', { class: 'errmsg', dataset: { testid: 'item-error' } }, error.message)),
            row('Retryable', error.retryable ? 'yes' : 'no'), row('When', error.time ? `${ago(error.time)} (${error.time})` : '—'),
            row('Worker', error.workerId || '—')) : h('div', { class: 'empty' }, 'No error recorded.'))),
        h('div', { class: 'stack' },
          h('div', { class: 'panel' }, h('h2', {}, 'Outputs'), (result.outputPaths || []).length
            ? h('ul', { class: 'mono', dataset: { testid: 'item-outputs' } }, result.outputPaths.map((path) => h('li', {}, path)))
            : h('div', { class: 'empty' }, 'No outputs recorded.'),
          payload.size ? h('div', { class: 'kv' }, row('Payload', h('pre', { class: 'blob' }, `${payload.size} bytes\n${payload.text}`))) : null),
          h('div', { class: 'panel' }, h('h2', {}, 'Metrics'), h('div', { class: 'kv' },
            row('Wall time', fmtDur(seconds(metrics.wallTime))),
            row('Peak memory', n(metrics.peakMemoryBytes) ? fmtBytes(metrics.peakMemoryBytes) : '—'),
            row('GPU memory', n(metrics.gpuMemoryBytes) ? fmtBytes(metrics.gpuMemoryBytes) : '—')),
          stages.length ? h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Stage'), h('th', { class: 'num' }, 'Time'))),
            h('tbody', {}, stages.map(([stage, d]) => h('tr', {}, h('td', {}, stage), h('td', { class: 'num' }, fmtDur(seconds(d))))))) : null))));
  }

  // ------------------------------------------------------------------ search

  $('#search').addEventListener('submit', async (event) => {
    event.preventDefault();
    const q = $('#search-input').value.trim();
    if (!q) return;
    if (/^[A-Za-z0-9._:-]{1,128}$/.test(q)) {
      try {
        await api.get(`/api/v1/jobs/${enc(q)}`);
        location.hash = `#/jobs/${enc(q)}`;
        return;
      } catch (e) { /* not a job id: try an output path */ }
    }
    try {
      const found = await api.get(`/api/v1/outputs?outputPath=${enc(q)}`);
      location.hash = itemHref(found.jobId, found.item.step, found.item.key);
    } catch (e) {
      toast(`No job id or output path matches "${q}"`, true);
    }
  });

  // ------------------------------------------------------------------ start

  (async () => {
    await loadMe();
    route();
  })();
})();
