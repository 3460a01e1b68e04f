"use strict";
// One job: /api/jobs/{id} every refresh until it has ended, and its output over
// /api/jobs/{id}/output/follow (Server-Sent Events; the browser resumes with Last-Event-ID).
(() => {
  const {page, api, duration, elapsed, memory, parseTime} = conductor;
  const id = page.dataset.jobId;
  const output = document.getElementById("output");
  const MAX_OUTPUT_CHARS = 2_000_000;  // the page keeps the end of a longer output

  const time = (text) => (text ? new Date(parseTime(text)).toLocaleString() : "");
  const seconds = (value) => (value === null || value === undefined ? "" : `${value.toFixed(2)} s`);
  const FIELDS = [
    ["Name", (job) => job.name], ["User", (job) => job.user], ["Account", (job) => job.account],
    ["Partition", (job) => job.partition], ["State", (job) => job.state],
    ["Reason", (job) => job.reason + (job.reason_message ? `: ${job.reason_message}` : "")],
    ["Priority", conductor.priority],
    ["Submitted", (job) => time(job.submit_time)], ["Started", (job) => time(job.start_time)],
    ["Ended", (job) => time(job.end_time)], ["Time limit", (job) => duration(job.time_limit_s)],
    ["Nodes", (job) => `${job.nodes}${job.node_list ? ` (${job.node_list})` : ""}`],
    ["CPUs", (job) => `${job.cpus} (${job.cpus_per_task} per task, ${job.ntasks_per_node} tasks per node)`],
    ["Memory per node", (job) => memory(job.memory_per_node_mb)], ["GPUs per node", (job) => String(job.gpus_per_node)],
    ["Dependency", (job) => job.dependency_state || job.dependency || ""], ["Hold", (job) => job.hold || ""],
    ["Requeue", (job) => (job.requeue ? "yes" : "no")], ["Restarts", (job) => String(job.restart_count)],
    ["Working directory", (job) => job.working_directory],
    ["Stdout", (job) => job.stdout_path], ["Stderr", (job) => job.stderr_path],
  ];
  const ACCOUNTING = [
    ["Exit code", (job) => job.exit_code], ["Elapsed", (job) => duration(elapsed(job))],
    ["CPU time", (job) => (job.cpu_time_user_s === null ? "" :
      duration((job.cpu_time_user_s || 0) + (job.cpu_time_system_s || 0)))],
    ["User CPU", (job) => seconds(job.cpu_time_user_s)], ["System CPU", (job) => seconds(job.cpu_time_system_s)],
    ["MaxRSS", (job) => (job.max_rss_kb === null ? "" : memory(Math.ceil(job.max_rss_kb / 1024)))],
  ];

  function fill(table, fields, job) {
    const rows = fields.map(([label, value]) => {
      const th = Object.assign(document.createElement("th"), {textContent: label});
      const td = Object.assign(document.createElement("td"), {textContent: value(job)});
      return conductor.row([th, td], {field: label});
    });
    document.querySelector(`#${table} tbody`).replaceChildren(...rows);
  }

  const loop = conductor.every(async () => {
    const job = await api(`/api/jobs/${id}`);
    const state = document.getElementById("state");
    state.textContent = job.state;
    state.className = `state state-${job.state}`;
    fill("fields", FIELDS, job);
    fill("accounting", ACCOUNTING, job);
    document.getElementById("ray-link").hidden = !(page.dataset.ray && job.start_time);
    document.getElementById("stream").hidden = job.stderr_path === job.stdout_path;
    if (!["PENDING", "RUNNING"].includes(job.state)) loop.stop();  // it has ended: nothing changes now
  });

  function append(text) {
    const atEnd = output.scrollTop + output.clientHeight >= output.scrollHeight - 4;
    output.textContent = (output.textContent + text).slice(-MAX_OUTPUT_CHARS);
    if (atEnd) output.scrollTop = output.scrollHeight;
  }

  let source = null;
  function follow(stream) {
    if (source) source.close();
    output.textContent = "";
    const status = document.getElementById("follow");
    source = new EventSource(`/api/jobs/${id}/output/follow?stream=${encodeURIComponent(stream)}`);
    source.onopen = () => { status.textContent = "following"; };
    source.onmessage = (event) => append(JSON.parse(event.data));
    source.addEventListener("truncated", () => { output.textContent = ""; });  // requeued: it starts again
    source.addEventListener("end", (event) => {
      const end = JSON.parse(event.data);
      source.close();  // else the browser would reconnect and be told the end again
      status.textContent = `ended: ${end.state}, exit code ${end.exit_code}`;
    });
    source.onerror = () => {
      status.textContent = source.readyState === EventSource.CLOSED ? "cannot follow the output" : "reconnecting…";
    };
  }

  document.getElementById("stream").addEventListener("change", (event) => follow(event.target.value));
  follow("stdout");
})();
