"use strict";
// Nodes and partitions: /api/nodes and /api/partitions, every refresh.
(() => {
  const {api, capacity, cell, row, memory, duration} = conductor;

  function nodeRow(node) {
    return row([
      cell(node.name, {className: "name"}), cell(node.state, {className: `node-${node.state}`}), cell(node.partition),
      cell(capacity(node.cpus.allocated, node.cpus.total), {className: "num cpus"}),
      cell(capacity(node.memory_mb.allocated, node.memory_mb.total, memory), {className: "num memory"}),
      cell(capacity(node.gpus_allocated, node.gpus), {className: "num gpus"}),
    ], {node: node.name});
  }

  function partitionRow(partition) {
    const name = partition.name + (partition.default ? " (default)" : "");
    return row([
      cell(name, {className: "name"}), cell(partition.state), cell(partition.nodes.join(",")),
      cell(capacity(partition.cpus.allocated, partition.cpus.total), {className: "num cpus"}),
      cell(capacity(partition.memory_mb.allocated, partition.memory_mb.total, memory), {className: "num memory"}),
      cell(capacity(partition.gpus_allocated, partition.gpus), {className: "num gpus"}),
      cell(String(partition.running_jobs), {className: "num running"}),
      cell(String(partition.pending_jobs), {className: "num pending"}),
      cell(duration(partition.max_time_s), {className: "num"}),
      cell(partition.default_time_s === null ? "NONE" : duration(partition.default_time_s), {className: "num"}),
    ], {partition: partition.name});
  }

  conductor.every(async () => {
    const [nodes, partitions] = await Promise.all([api("/api/nodes"), api("/api/partitions")]);
    document.querySelector("#nodes tbody").replaceChildren(...nodes.nodes.map(nodeRow));
    document.querySelector("#partitions tbody").replaceChildren(...partitions.partitions.map(partitionRow));
  });
})();
