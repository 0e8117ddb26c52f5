"""The deployment files, checked without Docker (run by .ci/run).

stdin: `cargo metadata --format-version 1 --locked --filter-platform HOST`.

- docker-compose.yml and docker-compose.cluster.yml are YAML, each service
  has an image, and what services name (other services, named volumes,
  networks) is declared;
- the Dockerfile's RUST_VERSION is at least the rust-version of every
  package the tunerpool binary is built from, as locked;
- the workspace's own rust-version (Cargo.toml) is no lower than what
  those locked dependencies need: it must not promise a Rust that cannot
  build them.

crates/tunerpool/tests/deploy.rs checks the files against the binary (the
variables they name, the values they set, the dist profile).
"""

import json
import pathlib
import re
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
problems = []


def check_compose(name):
    doc = yaml.safe_load((ROOT / name).read_text())
    services = doc.get("services") or {}
    if not services:
        problems.append(f"{name}: no services")
    volumes = set(doc.get("volumes") or {})
    networks = set(doc.get("networks") or {}) | {"default"}
    for svc_name, svc in services.items():
        where = f"{name}: services.{svc_name}"
        if not svc.get("image"):
            problems.append(f"{where}: no image")
        deps = svc.get("depends_on") or []
        for dep in deps if isinstance(deps, list) else deps.keys():
            if dep not in services:
                problems.append(f"{where}: depends on {dep}, which is not a service")
        for mount in svc.get("volumes") or []:
            source = mount.split(":", 1)[0]
            if not source.startswith((".", "/", "~")) and source not in volumes:
                problems.append(f"{where}: volume {source} is not declared")
            if source.startswith(".") and not (ROOT / source).exists():
                problems.append(f"{where}: {source} does not exist")
        nets = svc.get("networks") or []
        for net in nets if isinstance(nets, list) else nets.keys():
            if net not in networks:
                problems.append(f"{where}: network {net} is not declared")
        if svc.get("image") == "tunerpool:local" and "healthcheck" not in svc:
            problems.append(f"{where}: no healthcheck")


def version(v):
    """(major, minor, patch): "1.88" is 1.88.0."""
    return (tuple(int(p) for p in v.split(".")) + (0, 0))[:3]


def packages_by_name_local(packages, ids, name):
    """The workspace member named `name` among `ids` (no registry source), if any."""
    return next((packages[i] for i in ids if packages[i]["name"] == name and packages[i]["source"] is None), None)


def check_toolchain(metadata):
    m = re.search(r"^ARG RUST_VERSION=(\S+)$", (ROOT / "Dockerfile").read_text(), re.M)
    if not m:
        problems.append("Dockerfile: no ARG RUST_VERSION=")
        return
    rust = m.group(1)
    packages = {p["id"]: p for p in metadata["packages"]}
    nodes = {n["id"]: n for n in metadata["resolve"]["nodes"]}
    root = next(p["id"] for p in metadata["packages"] if p["name"] == "tunerpool" and p["source"] is None)
    # What the binary is built from: normal and build dependencies, not dev.
    seen, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        for dep in nodes[pid]["deps"]:
            if any(k["kind"] in (None, "build") for k in dep["dep_kinds"]):
                todo.append(dep["pkg"])
    needs = [(version(packages[p]["rust_version"]), packages[p]["name"], packages[p]["version"])
             for p in seen if packages[p].get("rust_version")]
    newest = max(needs)
    ours = packages[root].get("rust_version")
    deps = [n for n in needs if packages_by_name_local(packages, seen, n[1]) is None]
    if ours and deps and max(deps)[0] > version(ours):
        d = max(deps)
        problems.append(
            f"Cargo.toml: rust-version = \"{ours}\", but {d[1]} {d[2]} (locked) needs Rust "
            f"{'.'.join(map(str, d[0]))}: raise the workspace's rust-version")
    if newest[0] > version(rust):
        problems.append(
            f"Dockerfile: RUST_VERSION={rust}, but {newest[1]} {newest[2]} (locked) needs Rust "
            f"{'.'.join(map(str, newest[0]))}")
    else:
        print(f"Dockerfile's Rust {rust}: the locked build needs {'.'.join(map(str, newest[0]))} "
              f"({newest[1]} {newest[2]})")


check_compose("docker-compose.yml")
check_compose("docker-compose.cluster.yml")
check_toolchain(json.load(sys.stdin))
for p in problems:
    print(p, file=sys.stderr)
sys.exit(1 if problems else 0)
