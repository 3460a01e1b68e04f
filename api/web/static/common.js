"use strict";
// What every page shares: reading the API, Slurm's formats, and refreshing while the tab is shown.
// The page's <main id="page"> carries the server's data-* attributes (refresh-ms, ray, job-id).
const conductor = (() => {
  const page = document.getElementById("page");
  const refreshMs = Number(page.dataset.refreshMs) || 2000;

  class SignedOut extends Error {}

  // The JSON of a GET on the API; the session cookie goes with it (same origin).
  async function api(path) {
    const response = await fetch(path, {credentials: "same-origin", headers: {Accept: "application/json"}});
    if (response.status === 401) throw new SignedOut("signed out: reload the page to sign in again");
    if (!response.ok) {
      let message = `HTTP ${response.status}`;
      try { message = (await response.json()).error.message; } catch (_) { /* not our error shape */ }
      throw new Error(`${path}: ${message}`);
    }
    return response.json();
  }

  // The API writes UTC times, sometimes without an offset: never read them as local time.
  function parseTime(text) {
    if (!text) return null;
    return Date.parse(/(Z|[+-]\d\d:?\d\d)$/i.test(text) ? text : `${text}Z`);
  }

  // Seconds as Slurm writes them: [days-]hh:mm:ss, UNLIMITED for none (conductor.units.format_duration_s).
  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "UNLIMITED";
    let rest = Math.max(0, Math.floor(seconds));
    const days = Math.floor(rest / 86400);
    rest -= days * 86400;
    const two = (n) => String(n).padStart(2, "0");
    const clock = `${two(Math.floor(rest / 3600))}:${two(Math.floor((rest % 3600) / 60))}:${two(rest % 60)}`;
    return days ? `${days}-${clock}` : clock;
  }

  // How long the job has run (or ran): 00:00:00 before it starts.
  function elapsed(job, nowMs = Date.now()) {
    const start = parseTime(job.start_time);
    if (start === null) return 0;
    const end = parseTime(job.end_time);
    return ((end === null ? nowMs : end) - start) / 1000;
  }

  // 8192 -> 8G, 1536 -> 1536M (conductor.units.format_memory_mb).
  function memory(mb) {
    for (const [unit, size] of [["T", 1024 * 1024], ["G", 1024]]) {
      if (mb && mb % size === 0) return `${mb / size}${unit}`;
    }
    return `${mb}M`;
  }

  // A pending job's priority as the scheduler computes it now; otherwise only a priority an admin set.
  function priority(job) {
    if (job.priority_factors) return String(job.priority_factors.priority);
    return job.priority ? String(job.priority) : "";
  }

  function capacity(allocated, total, format = String) {
    return `${format(allocated)} / ${format(total)}`;
  }

  // A table cell (text only: the API's values never become markup); `link` makes it an <a>.
  function cell(text, {className = "", link = null} = {}) {
    const td = document.createElement("td");
    if (className) td.className = className;
    if (link) {
      const a = document.createElement("a");
      a.href = link;
      a.textContent = text;
      td.append(a);
    } else {
      td.textContent = text;
    }
    return td;
  }

  function row(cells, data = {}) {
    const tr = document.createElement("tr");
    Object.assign(tr.dataset, data);
    tr.append(...cells);
    return tr;
  }

  function setStatus(text) {
    const status = document.getElementById("status");
    if (status) status.textContent = text;
  }

  // Run `task` now and every refreshMs after it ends, skipping hidden tabs; stop() ends it, soon() runs it
  // next (at once, or as soon as the run in progress ends).
  function every(task) {
    let timer = null;
    let stopped = false;
    let again = false;
    async function tick() {
      timer = null;
      if (!document.hidden) {
        try {
          await task();
          setStatus("");
        } catch (error) {
          setStatus(error.message);
          if (error instanceof SignedOut) stopped = true;
        }
      }
      if (!stopped) timer = setTimeout(tick, again ? 0 : refreshMs);
      again = false;
    }
    tick();
    return {
      stop() { stopped = true; clearTimeout(timer); },
      soon() {
        if (timer === null) { again = true; return; }
        clearTimeout(timer);
        timer = setTimeout(tick, 0);
      },
    };
  }

  return {page, api, parseTime, duration, elapsed, memory, priority, capacity, cell, row, setStatus, every, SignedOut};
})();
