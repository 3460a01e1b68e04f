"""sinfo: partitions and nodes, one line per partition and node state (``-N``: per node).

    sinfo [-h] [-N] [-s] [-l] [-p PARTITIONS] [-n NODES] [-t STATES] [-o FORMAT | -O FIELDS]
"""

from __future__ import annotations

import argparse
import json
import re
from typing import Callable

from cli import render
from cli.slurm import common, records
from conductor import hostlist

DEFAULT_FORMAT = "%#P %.5a %.10l %.6D %.6t %N"
NODE_FORMAT = "%#N %.6D %#P %6t"
SUMMARY_FORMAT = "%#P %.5a %.10l %.16F  %N"
LONG_FORMAT = "%#P %.5a %.10l %.10s %.4r %.8h %.10g %.6D %.11T %N"

Row = dict  # partition, default, avail, max_time_s, default_time_s, nodes (the API's node dicts), state


def _limit(seconds: int | None) -> str:
    return "infinite" if seconds is None else render.squeue_time(seconds)


def _sum(row: Row, pick: Callable[[dict], int]) -> int:
    return sum(pick(node) for node in row["nodes"])


def _cpus_aiot(row: Row) -> str:
    alloc = _sum(row, lambda n: n["cpus"]["allocated"])
    total = _sum(row, lambda n: n["cpus"]["total"])
    other = _sum(row, lambda n: n["cpus"]["total"] if n["state"] != "up" else 0)
    return f"{alloc}/{total - alloc - other}/{other}/{total}"


def _nodes_aiot(row: Row) -> str:
    states = [records.node_state(node) for node in row["nodes"]]
    alloc = sum(state in ("alloc", "mix") for state in states)
    idle = states.count("idle")
    return f"{alloc}/{idle}/{len(states) - alloc - idle}/{len(states)}"


def _per_node(row: Row, pick: Callable[[dict], str]) -> str:
    values = sorted({pick(node) for node in row["nodes"]})
    return values[0] if len(values) == 1 else (f"{values[0]}+" if values else "0")


CODES: dict[str, tuple[str, Callable[[Row], str]]] = {
    "P": ("PARTITION", lambda r: r["partition"] + ("*" if r["default"] else "")),
    "R": ("PARTITION", lambda r: r["partition"]),
    "a": ("AVAIL", lambda r: r["avail"]),
    "l": ("TIMELIMIT", lambda r: _limit(r["max_time_s"])),
    "L": ("DEFAULTTIME", lambda r: _limit(r["default_time_s"]) if r["default_time_s"] else "n/a"),
    "D": ("NODES", lambda r: str(len(r["nodes"]))),
    "t": ("STATE", lambda r: r["state"]),
    "T": ("STATE", lambda r: {"idle": "idle", "mix": "mixed", "alloc": "allocated", "down": "down",
                              "n/a": "n/a"}[r["state"]]),
    "N": ("NODELIST", lambda r: hostlist.compress(n["name"] for n in r["nodes"])),
    "n": ("HOSTNAMES", lambda r: hostlist.compress(n["name"] for n in r["nodes"])),
    "o": ("NODE_ADDR", lambda r: hostlist.compress(n["name"] for n in r["nodes"])),
    "c": ("CPUS", lambda r: _per_node(r, lambda n: str(n["cpus"]["total"]))),
    "m": ("MEMORY", lambda r: _per_node(r, lambda n: str(n["memory_mb"]["total"]))),
    "G": ("GRES", lambda r: _per_node(r, lambda n: f"gpu:{n['gpus']}" if n["gpus"] else "(null)")),
    "C": ("CPUS(A/I/O/T)", _cpus_aiot),
    "F": ("NODES(A/I/O/T)", _nodes_aiot),
    "E": ("REASON", lambda r: "none"),
    "f": ("AVAIL_FEATURES", lambda r: "(null)"),
    "b": ("ACTIVE_FEATURES", lambda r: "(null)"),
    "e": ("FREE_MEM", lambda r: "N/A"),
    "O": ("CPU_LOAD", lambda r: "N/A"),
    "s": ("JOB_SIZE", lambda r: f"1-{r['max_nodes']}" if r.get("max_nodes") else "1-infinite"),
    "r": ("ROOT", lambda r: "no"),
    "h": ("OVERSUBSCRIBE", lambda r: "NO"),
    "g": ("GROUPS", lambda r: "all"),
    "z": ("S:C:T", lambda r: "1:1:1"),
    "X": ("SOCKETS", lambda r: "1"), "Y": ("CORES", lambda r: "1"), "Z": ("THREADS", lambda r: "1"),
    "w": ("WEIGHT", lambda r: "1"), "d": ("TMP_DISK", lambda r: "0"),
    "p": ("PRIO_TIER", lambda r: "1"), "V": ("CLUSTER", lambda r: "N/A"),
}
NAMES = {"partition": "P", "partitionname": "R", "available": "a", "timelimit": "l", "defaulttime": "L",
         "nodes": "D", "statecompact": "t", "statelong": "T", "nodelist": "N", "nodehost": "n", "nodeaddr": "o",
         "cpus": "c", "memory": "m", "gres": "G", "cpusstate": "C", "nodeaiot": "F", "reason": "E",
         "features": "f", "featuresact": "b", "freemem": "e", "cpusload": "O", "size": "s", "root": "r",
         "oversubscribe": "h", "groups": "g", "socketcorethread": "z", "sockets": "X", "cores": "Y",
         "threads": "Z", "weight": "w", "disk": "d", "prioritytier": "p", "cluster": "V"}
_FIELD = re.compile(r"%([.#]?)(\d*)([A-Za-z%])")


def _parser() -> argparse.ArgumentParser:
    parser = common.parser("sinfo")
    add = parser.add_argument
    add("--help", action="store_true")
    add("-h", "--noheader", action="store_true")
    add("-N", "--Node", action="store_true")
    add("-s", "--summarize", action="store_true")
    add("-l", "--long", action="store_true")
    add("-p", "--partition", action="append", default=[])
    add("-n", "--nodes", action="append", default=[])
    add("-t", "--states", action="append", default=[])
    add("-o", "--format")
    add("-O", "--Format", dest="format_long")
    add("--json", nargs="?", const="")
    add("--yaml", nargs="?", const="")
    for flags in (("-a", "--all"), ("-e", "--exact"), ("-r", "--responding"), ("-d", "--dead"), ("-R", "--list-reasons"),
                  ("-v", "--verbose"), ("--local",), ("--federation",), ("-T", "--reservation"), ("--noconvert",),
                  ("-V", "--version"), ("--hide",)):
        add(*flags, action="store_true")
    for flags in (("-M", "--clusters"), ("-i", "--iterate"), ("-S", "--sort")):
        add(*flags)
    return parser


def main(argv: list[str] | None = None) -> int:
    return common.run("sinfo", lambda: _sinfo(list(argv or [])))


def _sinfo(argv: list[str]) -> int:
    options = _parser().parse_args(argv)
    if options.help:
        print(__doc__.strip())
        return 0
    if options.version:
        print("slurm 22.05.8 (conductor)")
        return 0
    api = common.client()
    partitions, nodes = api.partitions(), {node["name"]: node for node in api.nodes()}
    if options.json is not None or options.yaml is not None:
        print(json.dumps({"nodes": list(nodes.values()), "partitions": partitions, "errors": [], "warnings": []},
                         indent=2))
        return 0
    rows = _rows(options, partitions, nodes)
    columns = _columns(options)
    lines = _lay_out(columns, rows, header=not options.noheader)
    if lines:
        print("\n".join(lines))
    return 0


def _rows(options: argparse.Namespace, partitions: list[dict], nodes: dict[str, dict]) -> list[Row]:
    wanted_parts = set(common.split_ids(options.partition))
    wanted_nodes = {name for text in options.nodes for name in hostlist.expand(text)}
    wanted_states = {state.lower() for state in common.split_ids(options.states)}
    rows = []
    for partition in partitions:
        if wanted_parts and partition["name"] not in wanted_parts:
            continue
        members = [nodes[name] for name in partition["nodes"] if name in nodes
                   and (not wanted_nodes or name in wanted_nodes)]
        groups: dict[str, list[dict]] = {}
        for node in members:
            groups.setdefault(records.node_state(node), []).append(node)
        avail = {"up": "up", "down": "down", "inactive": "inact"}.get(partition["state"], partition["state"])
        base = {"partition": partition["name"], "default": partition.get("default", False), "avail": avail,
                "max_time_s": partition.get("max_time_s"), "default_time_s": partition.get("default_time_s"),
                "max_nodes": partition.get("max_nodes")}
        if options.Node:
            rows += [{**base, "nodes": [node], "state": records.node_state(node)} for node in members]
        elif options.summarize:
            rows.append({**base, "nodes": members, "state": "n/a"})
        else:
            rows += [{**base, "nodes": group, "state": state} for state, group in sorted(groups.items())]
            if not groups:
                rows.append({**base, "nodes": [], "state": "n/a"})
    return [row for row in rows if not wanted_states or row["state"] in wanted_states]


def _columns(options: argparse.Namespace) -> list[tuple[str, Callable[[Row], str], str, int | None]]:
    """(header, value, justification '' / '.' / '#', width) per field; literal text as its own column."""
    if options.format_long:
        columns = []
        for item in (part for part in options.format_long.split(",") if part):
            name, _, size = item.partition(":")
            code = NAMES.get(name.strip().lower())
            if code is None:
                common.fail(f"sinfo: error: Invalid node format specification: {name}")
            header, value = CODES[code]
            width = size.lstrip(".")
            columns.append((name.strip().upper(), value, "." if size.startswith(".") else "",
                            int(width) if width.isdigit() else 20))
        return columns
    text = options.format or (NODE_FORMAT if options.Node else SUMMARY_FORMAT if options.summarize
                              else LONG_FORMAT if options.long else DEFAULT_FORMAT)
    columns, position = [], 0
    for match in _FIELD.finditer(text):
        if match.start() > position:
            literal = text[position:match.start()]
            columns.append((literal, lambda r, t=literal: t, "", None))
        position = match.end()
        flag, width, code = match.groups()
        if code == "%":
            columns.append(("%", lambda r: "%", "", None))
            continue
        if code not in CODES:
            common.fail(f"sinfo: error: Invalid node format specification: {code}")
        header, value = CODES[code]
        columns.append((header, value, flag, int(width) if width else None))
    if position < len(text):
        columns.append((text[position:], lambda r, t=text[position:]: t, "", None))
    return columns


def _lay_out(columns: list, rows: list[Row], *, header: bool) -> list[str]:
    table = [[value(row) for _, value, _, _ in columns] for row in rows]
    widths = []
    for index, (title, _, flag, width) in enumerate(columns):
        if flag == "#":  # as wide as the widest value (and the header)
            width = max([len(title)] + [len(cells[index]) for cells in table])
        widths.append(width)
    lines = [[title for title, _, _, _ in columns]] if header else []
    lines += table
    out = []
    for cells in lines:
        parts = []
        for cell, (_, _, flag, _), width in zip(cells, columns, widths):
            if width is not None:
                cell = cell[:width]
                cell = cell.rjust(width) if flag == "." else cell.ljust(width)
            parts.append(cell)
        out.append("".join(parts))
    return out


