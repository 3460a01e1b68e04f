"use strict";
// The queue: /api/jobs with the form's filters, every refresh, all pages (up to MAX_ROWS jobs).
(() => {
  const {page, api, duration, elapsed, priority, cell, row} = conductor;
  const form = document.getElementById("filters");
  const body = document.querySelector("#queue tbody");
  const MAX_ROWS = 1000;
  const PAGE_SIZE = 500;
  const RECENT_S = 3600;

  function filters() {
    const data = new FormData(form);  // a disabled field (a user's own name) is left out: the API applies it
    const list = (name) => String(data.get(name) || "").split(",").map((s) => s.trim()).filter(Boolean);
    return {state: String(data.get("state") || ""), users: list("user"), partitions: list("partition")};
  }

  function params(wanted, extra) {
    const query = new URLSearchParams(extra);
    wanted.users.forEach((user) => query.append("user", user));
    wanted.partitions.forEach((partition) => query.append("partition", partition));
    return query;
  }

  async function listAll(query) {
    const found = [];
    let cursor = null;
    query.set("limit", String(PAGE_SIZE));
    do {
      if (cursor !== null) query.set("cursor", String(cursor));
      const result = await api(`/api/jobs?${query}`);
      found.push(...result.jobs);
      cursor = result.next_cursor;
    } while (cursor !== null && found.length < MAX_ROWS);
    return {jobs: found, more: cursor !== null};
  }

  // The default view: what waits or runs, and what ended in the last hour.
  async function jobs(wanted) {
    if (wanted.state === "ALL") return listAll(params(wanted, {}));
    if (wanted.state) return listAll(params(wanted, {state: wanted.state}));
    const since = new Date(Date.now() - RECENT_S * 1000).toISOString();
    const [active, recent] = await Promise.all([listAll(params(wanted, {state: "PENDING,RUNNING"})),
                                                listAll(params(wanted, {ended_since: since}))]);
    const byId = new Map([...active.jobs, ...recent.jobs].map((job) => [job.job_id, job]));
    return {jobs: [...byId.values()].sort((a, b) => a.job_id - b.job_id), more: active.more || recent.more};
  }

  function jobRow(job, now) {
    const ray = page.dataset.ray && job.start_time ? `/web/jobs/${job.job_id}/ray` : null;
    return row([
      cell(job.display_id, {className: "id", link: `/web/jobs/${job.job_id}`}),
      cell(job.name), cell(job.user, {className: "user"}), cell(job.account), cell(job.partition, {className: "partition"}),
      cell(job.state, {className: `state state-${job.state}`}),
      cell(job.reason + (job.reason_message ? `: ${job.reason_message}` : ""), {className: "reason"}),
      cell(priority(job), {className: "num"}),
      cell(duration(elapsed(job, now)), {className: "num elapsed"}),
      cell(duration(job.time_limit_s), {className: "num"}),
      cell(String(job.cpus), {className: "num"}),
      cell(job.node_list || job.node || ""),
      cell(ray ? "task" : "", {link: ray}),
    ], {jobId: job.job_id, state: job.state});
  }

  async function summary() {
    const queue = await api("/api/queue");
    const reasons = Object.entries(queue.pending_by_reason).map(([reason, count]) => `${reason} ${count}`);
    document.getElementById("summary").textContent =
      `${queue.pending_jobs} pending (${queue.pending_cpus} CPUs), ${queue.running_jobs} running ` +
      `(${queue.running_cpus} CPUs)` + (reasons.length ? `; waiting for: ${reasons.join(", ")}` : "");
  }

  async function refresh() {
    const [found] = await Promise.all([jobs(filters()), summary()]);
    const now = Date.now();
    body.replaceChildren(...found.jobs.map((job) => jobRow(job, now)));
    document.getElementById("empty").hidden = found.jobs.length > 0;
    const more = document.getElementById("more");
    more.hidden = !found.more;
    more.textContent = `Only the first ${found.jobs.length} jobs are shown: narrow the filters to see the rest.`;
  }

  // The filters live in the address too, so that a filtered view can be bookmarked or shared.
  function remember() {
    const query = new URLSearchParams();
    for (const [name, value] of new FormData(form)) if (value) query.set(name, value);
    history.replaceState(null, "", query.size ? `?${query}` : location.pathname);
  }

  async function partitionNames() {
    const names = (await api("/api/partitions")).partitions.map((p) => p.name);
    const list = document.getElementById("partition-names");
    list.replaceChildren(...names.map((name) => Object.assign(document.createElement("option"), {value: name})));
  }

  const loop = conductor.every(refresh);
  let pause = null;
  form.addEventListener("submit", (event) => event.preventDefault());
  form.addEventListener("input", () => {
    clearTimeout(pause);
    pause = setTimeout(() => { remember(); loop.soon(); }, 250);
  });
  partitionNames().catch(() => {});
})();
