#!/usr/bin/env python3
"""Consistency checks of Herald's deploy files, beyond what the schema validators see.

    check.py compose                 # compose file, nginx, Prometheus, Grafana, collector
    check.py k8s RENDERED.yaml...    # `kubectl kustomize` output of each overlay

Run by `make compose-check` and `make k8s-check` (inside .venv, which has PyYAML). Optional
tools, used when found on PATH or in .venv/opt (the Makefile fetches them from Debian's
packages when it can): `promtool` (Prometheus config and rules) and `nginx` (`nginx -t`, then
a routing test of every public path against stub upstreams).

Metric names used by the dashboard and the alerts are compared with the names recorded in
crates/; unknown names are warnings, or errors with HERALD_STRICT_METRICS=1.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
OPT = ROOT / ".venv" / "opt"

# The public surface of the design: path -> the service that must answer it.
ROUTES = {
    "/": "gateway",
    "/connection/websocket": "gateway",
    "/ws/chat/lobby": "gateway",
    "/ws/notifications/notifications%23abc": "gateway",
    "/api/publish": "gateway",
    "/api/info": "gateway",
    "/docs": "gateway",
    "/docs/index.html": "gateway",
    "/index.html": "gateway",
    "/auth/token": "auth",
    "/auth/jwks.json": "auth",
    "/openapi/auth.json": "auth",
    "/tasks": "tasks-api",
    "/tasks?limit=5": "tasks-api",
    "/tasks/0190b3c4-0000-7000-8000-000000000000": "tasks-api",
    "/openapi/tasks.json": "tasks-api",
    "/tasksfoo": "gateway",
}
SERVICE_PORTS = {"gateway": 8080, "tasks-api": 8081, "auth": 8082, "notifier": 8083}

errors: list[str] = []
warnings: list[str] = []


def error(msg: str) -> None:
    errors.append(msg)
    print(f"  ERROR {msg}")


def warn(msg: str) -> None:
    warnings.append(msg)
    print(f"  warning: {msg}")


def ok(msg: str) -> None:
    print(f"  ok    {msg}")


def load_yaml(path: Path):
    with path.open() as f:
        return yaml.safe_load(f)


def find_tool(name: str) -> str | None:
    for candidate in (OPT / "usr" / "bin" / name, OPT / "usr" / "sbin" / name):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(name)


# --- metric names ------------------------------------------------------------------------

METRIC_RE = re.compile(r"\bherald_[a-z0-9_]+")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def metrics_in_code() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "crates").rglob("*.rs"):
        text = path.read_text(errors="replace")
        names.update(re.findall(r'"(herald_[a-z0-9_]+)"', text))
    return names


def metric_base(name: str) -> str:
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def check_metric_names(source: str, exprs: list[str], known: set[str]) -> None:
    used = {metric_base(m) for e in exprs for m in METRIC_RE.findall(e)}
    unknown = sorted(n for n in used if n not in known and metric_base(n) not in known)
    if not unknown:
        ok(f"{source}: all {len(used)} metric names are recorded in crates/")
        return
    msg = f"{source}: metrics not (yet) recorded in crates/: {', '.join(unknown)}"
    if os.environ.get("HERALD_STRICT_METRICS") == "1":
        error(msg)
    else:
        warn(msg)


# --- Prometheus -------------------------------------------------------------------------------


def check_prometheus(compose_services: set[str]) -> list[str]:
    print("prometheus")
    path = DEPLOY / "prometheus.yml"
    cfg = load_yaml(path)
    exprs: list[str] = []
    jobs = cfg.get("scrape_configs") or []
    if not jobs:
        error("prometheus.yml has no scrape_configs")
    scraped: dict[str, int] = {}
    for job in jobs:
        if "job_name" not in job:
            error("a scrape config has no job_name")
        for sc in job.get("static_configs", []):
            for target in sc.get("targets", []):
                host, _, port = target.rpartition(":")
                if not port.isdigit():
                    error(f"target {target} has no port")
                if host != "localhost":
                    if host not in compose_services:
                        error(f"scrape target {target} is not a compose service")
                    scraped[host] = int(port)
    for svc in compose_services:
        base = re.sub(r"-\d+$", "", svc)
        if base in SERVICE_PORTS:
            if scraped.get(svc) != SERVICE_PORTS[base]:
                error(f"compose service {svc} is not scraped on :{SERVICE_PORTS[base]}")
    ok(f"prometheus.yml: {len(jobs)} jobs, every Herald service scraped")

    for rule_file in cfg.get("rule_files", []):
        rules_path = DEPLOY / rule_file
        if not rules_path.is_file():
            error(f"rule file {rule_file} (relative to deploy/) does not exist")
            continue
        rules = load_yaml(rules_path)
        count = 0
        for group in rules.get("groups", []):
            for rule in group.get("rules", []):
                count += 1
                if "alert" not in rule or not str(rule.get("expr", "")).strip():
                    error(f"{rule_file}: a rule lacks alert or expr: {rule}")
                if "severity" not in rule.get("labels", {}):
                    error(f"{rule_file}: alert {rule.get('alert')} has no severity label")
                exprs.append(str(rule.get("expr", "")))
        ok(f"{rule_file}: {count} alerts")

    promtool = find_tool("promtool")
    if promtool:
        run_tool([promtool, "check", "config", str(path)], "promtool check config", cwd=DEPLOY)
        tests = DEPLOY / "prometheus-alerts.test.yml"
        if tests.is_file():
            run_tool([promtool, "test", "rules", tests.name], "promtool test rules (alert unit tests)", cwd=DEPLOY)
    else:
        print("  skip  promtool not found: config and PromQL checked structurally only")
    return exprs


def run_tool(cmd: list[str], label: str, cwd: Path | None = None) -> bool:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        error(f"{label} failed:\n{result.stdout}{result.stderr}")
        return False
    ok(label)
    return True


# --- Grafana ------------------------------------------------------------------------------------


def check_grafana(compose: dict) -> list[str]:
    print("grafana")
    exprs: list[str] = []
    prov = DEPLOY / "grafana" / "provisioning"
    ds = load_yaml(prov / "datasources" / "prometheus.yml")
    if ds.get("apiVersion") != 1 or not ds.get("datasources"):
        error("datasource provisioning must have apiVersion 1 and a datasource")
    dp = load_yaml(prov / "dashboards" / "herald.yml")
    paths = [p["options"]["path"] for p in dp.get("providers", [])]
    mounts = compose["services"]["grafana"].get("volumes", [])
    for p in paths:
        if not any(str(m).endswith(":" + p + ":ro") or str(m).endswith(":" + p) for m in mounts):
            error(f"dashboard provider path {p} is not mounted in the grafana service")
    dashboards = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
    if not dashboards:
        error("no dashboard JSON in deploy/grafana/dashboards")
    for path in dashboards:
        try:
            dash = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            error(f"{path.name} is not JSON: {e}")
            continue
        for key in ("uid", "title", "panels", "schemaVersion"):
            if key not in dash:
                error(f"{path.name} has no {key}")
        ids = [p.get("id") for p in dash.get("panels", [])]
        if len(ids) != len(set(ids)) or None in ids:
            error(f"{path.name}: panel ids must be present and unique")
        for panel in dash.get("panels", []):
            if "gridPos" not in panel:
                error(f"{path.name}: panel {panel.get('title')} has no gridPos")
            if panel.get("type") == "row":
                continue
            targets = panel.get("targets") or []
            if not targets:
                error(f"{path.name}: panel {panel.get('title')} has no query")
            for t in targets:
                expr = t.get("expr", "")
                if not expr.strip():
                    error(f"{path.name}: panel {panel.get('title')} has an empty query")
                if expr.count("(") != expr.count(")"):
                    error(f"{path.name}: unbalanced parentheses in {expr}")
                exprs.append(expr)
        ok(f"{path.name}: {len(ids)} panels")
    titles = " ".join(p.get("title", "").lower() for d in dashboards for p in json.loads(d.read_text())["panels"])
    for needed in ("connections", "messages", "publish latency", "queue drops", "outbox backlog",
                   "notifier lag", "http errors"):
        if needed not in titles:
            error(f"the dashboard has no '{needed}' panel")
    return exprs


# --- OpenTelemetry collector ----------------------------------------------------------------


def check_collector() -> None:
    print("otel collector")
    cfg = load_yaml(DEPLOY / "otel-collector.yaml")
    service = cfg.get("service") or {}
    pipelines = service.get("pipelines") or {}
    if not pipelines:
        error("otel-collector.yaml has no service.pipelines")
    used: dict[str, set[str]] = {"receivers": set(), "processors": set(), "exporters": set()}
    for name, pipeline in pipelines.items():
        if not pipeline.get("receivers") or not pipeline.get("exporters"):
            error(f"pipeline {name} needs receivers and exporters")
        for kind in used:
            for component in pipeline.get(kind, []) or []:
                used[kind].add(component)
                if component not in (cfg.get(kind) or {}):
                    error(f"pipeline {name} uses {kind[:-1]} {component}, which is not defined")
    for kind, names in used.items():
        for defined in cfg.get(kind) or {}:
            if defined not in names:
                error(f"{kind[:-1]} {defined} is defined but no pipeline uses it")
    for ext in service.get("extensions", []) or []:
        if ext not in (cfg.get("extensions") or {}):
            error(f"extension {ext} is not defined")
    ok(f"otel-collector.yaml: pipelines {', '.join(pipelines)}")


# --- compose ----------------------------------------------------------------------------------


def check_compose_file() -> dict:
    print("docker-compose.yml")
    compose = load_yaml(ROOT / "docker-compose.yml")
    services = compose["services"]
    for name, svc in services.items():
        for vol in svc.get("volumes", []) or []:
            src = str(vol).split(":")[0]
            if src.startswith("./") and not (ROOT / src).exists():
                error(f"{name} mounts {src}, which does not exist")
        build = svc.get("build")
        if isinstance(build, dict) and not (ROOT / build.get("context", ".") / build["dockerfile"]).is_file():
            error(f"{name} builds from a missing Dockerfile")
    expected = {
        "auth": "herald-auth",
        "tasks-api": "herald-tasks-api",
        "notifier": "herald-notifier",
        "gateway-1": "herald-gateway",
        "gateway-2": "herald-gateway",
    }
    for name, binary in expected.items():
        svc = services.get(name)
        if not svc:
            error(f"compose has no {name} service")
            continue
        if svc.get("command") != [binary]:
            error(f"{name} must run {binary}")
        listen = (svc.get("environment") or {}).get("HERALD_LISTEN", "")
        port = SERVICE_PORTS[re.sub(r"-\d+$", "", name)]
        if not listen.endswith(f":{port}"):
            error(f"{name} must listen on :{port} (HERALD_LISTEN={listen})")
    redis_cmd = " ".join(services["redis"].get("command", []))
    if "--appendonly yes" not in redis_cmd:
        error("redis must run with --appendonly yes")
    setup = " ".join(services["migrate"].get("command", []))
    for step in ("herald-auth migrate", "herald-tasks-api migrate"):
        if step not in setup:
            error(f"the migrate step does not run `{step}`")
    for name in ("gateway-1", "gateway-2"):
        env = services[name].get("environment") or {}
        drain = int(env.get("HERALD_DRAIN_WINDOW", "0"))
        grace = int(str(services[name].get("stop_grace_period", "10s")).rstrip("s"))
        if grace <= drain:
            error(f"{name}: stop_grace_period {grace}s must exceed HERALD_DRAIN_WINDOW {drain}s")
    for name in ("otel-collector", "jaeger"):
        if "tracing" not in (services.get(name, {}).get("profiles") or []):
            error(f"{name} must be under the `tracing` profile")
    ok(f"{len(services)} services, commands, ports, AOF, migrations, drain vs grace, profiles")
    return compose


# --- Dockerfile -----------------------------------------------------------------------------------


def check_dockerfile(compose: dict) -> None:
    print("deploy/Dockerfile")
    before = len(errors)
    text = (DEPLOY / "Dockerfile").read_text()
    build = re.search(r"RUN cargo build(?:[^\n\\]|\\\n)*", text)
    packages = re.findall(r"-p ([A-Za-z][\w-]*)", build.group(0)) if build else []
    copied = set(re.findall(r"target/release/(\S+)", text))
    if set(packages) != copied:
        error(f"the packages built ({packages}) differ from the binaries copied ({sorted(copied)})")
    if "SQLX_OFFLINE=true" not in text:
        error("the build must set SQLX_OFFLINE=true")
    if not re.search(r"^USER (?!0|root)", text, re.M):
        error("the runtime image must run as a non-root user")
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    for needed in (".sqlx", "Cargo.lock", "migrations", "crates"):
        if any(pattern.rstrip("/") == needed for pattern in ignored):
            error(f"Dockerfile.dockerignore must not exclude {needed}")
    commands = {c[0] for svc in compose["services"].values()
                if svc.get("image", "").startswith("${HERALD_IMAGE") and isinstance(c := svc.get("command"), list)
                and c and c[0].startswith("herald")}
    for command in commands - copied:
        error(f"compose runs {command}, which the image does not contain")
    cargo = shutil.which("cargo")
    if not cargo:
        print("  skip  cargo not found: package names not checked against the workspace")
    else:
        result = subprocess.run([cargo, "metadata", "--format-version", "1", "--no-deps"], cwd=ROOT,
                                capture_output=True, text=True)
        if result.returncode != 0:
            error(f"cargo metadata failed: {result.stderr.strip()}")
        else:
            bins = {p["name"]: [t["name"] for t in p["targets"] if "bin" in t["kind"]]
                    for p in json.loads(result.stdout)["packages"]}
            for package in packages:
                if package not in bins.get(package, []):
                    error(f"the workspace has no package {package} with a binary of that name")
    if len(errors) == before:
        ok(f"builds and copies {', '.join(packages)}; offline queries; non-root; every compose command present")


# --- nginx ---------------------------------------------------------------------------------------


def check_nginx(compose_services: set[str]) -> None:
    print("nginx")
    text = (DEPLOY / "nginx.conf").read_text()
    hosts = set(re.findall(r"^\s*server\s+([a-z0-9-]+):\d+", text, re.M))
    for host in hosts:
        if host not in compose_services:
            error(f"nginx upstream {host} is not a compose service")
    ok(f"upstreams {', '.join(sorted(hosts))} are compose services")
    nginx = find_tool("nginx")
    if not nginx:
        print("  skip  nginx not found: no `nginx -t` and no routing test")
        return
    with tempfile.TemporaryDirectory(prefix="herald-nginx-") as tmp:
        stubs = {name: Stub(name) for name in ("gateway", "auth", "tasks-api")}
        listen = f"127.0.0.1:{free_port()}"
        subprocess.run(
            [str(DEPLOY / "nginx-local.sh"), tmp, listen, stubs["gateway"].addr, stubs["auth"].addr,
             stubs["tasks-api"].addr],
            check=True,
        )
        base = [nginx, "-p", tmp, "-c", f"{tmp}/nginx.conf", "-e", "stderr"]
        if not run_tool(base + ["-t", "-q", "-g", f"pid {tmp}/nginx.pid;"], "nginx -t"):
            return
        proc = subprocess.Popen(
            base + ["-g", f"daemon off; pid {tmp}/nginx.pid;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_for_port(listen)
            check_routes(listen)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
            for stub in stubs.values():
                stub.stop()


class Stub:
    """An HTTP server that answers every request with its name and what it saw."""

    def __init__(self, name: str):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (the stdlib's naming)
                body = json.dumps(
                    {
                        "service": name,
                        "path": self.path,
                        "upgrade": self.headers.get("Upgrade"),
                        "connection": self.headers.get("Connection"),
                        "forwarded_for": self.headers.get("X-Forwarded-For"),
                        "host": self.headers.get("Host"),
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET  # noqa: N815

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.addr = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(addr: str, timeout: float = 10.0) -> None:
    host, port = addr.rsplit(":", 1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, int(port)), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {addr}")


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict | None]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, None


def check_routes(listen: str) -> None:
    bad = 0
    for path, service in ROUTES.items():
        status, seen = fetch(f"http://{listen}{path}")
        got = seen and seen.get("service")
        if status != 200 or got != service:
            error(f"{path} reached {got or status}, expected {service}")
            bad += 1
        elif seen["path"] != path:
            error(f"{path} arrived upstream as {seen['path']} (the path must pass unchanged)")
            bad += 1
    if not bad:
        ok(f"routing: {len(ROUTES)} public paths reach the right service")
    # The WebSocket endpoints must pass the upgrade through, with the client's address.
    for path in ("/connection/websocket", "/ws/chat/lobby"):
        _, seen = fetch(
            f"http://{listen}{path}",
            {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
             "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="},
        )
        if not seen or (seen.get("upgrade") or "").lower() != "websocket" or "upgrade" not in (
            seen.get("connection") or ""
        ).lower():
            error(f"{path}: the WebSocket upgrade is not passed through ({seen})")
        elif not seen.get("forwarded_for") or not seen.get("host"):
            error(f"{path}: X-Forwarded-For or Host is lost on the WebSocket route ({seen})")
        else:
            ok(f"{path}: Upgrade, Connection, Host and X-Forwarded-For reach the gateway")
    status, _ = fetch(f"http://{listen}/metrics")
    if status != 404:
        error(f"/metrics must not be public through nginx (got {status})")
    else:
        ok("/metrics is not exposed at the edge")


# --- Kubernetes ---------------------------------------------------------------------------------


def check_k8s(files: list[str]) -> None:
    for file in files:
        print(f"k8s {file}")
        docs = [d for d in yaml.safe_load_all(Path(file).read_text()) if d]
        by_kind: dict[str, list[dict]] = {}
        for d in docs:
            by_kind.setdefault(d["kind"], []).append(d)
        deployments = {d["metadata"]["name"]: d for d in by_kind.get("Deployment", [])}
        config = {}
        for cm in by_kind.get("ConfigMap", []):
            if cm["metadata"]["name"].startswith("herald-config"):
                config = cm.get("data", {})
        drain = int(config.get("HERALD_DRAIN_WINDOW", "0"))
        if not drain:
            error("herald-config has no HERALD_DRAIN_WINDOW")

        for component, binary in (("gateway", "herald-gateway"), ("auth", "herald-auth"),
                                  ("tasks-api", "herald-tasks-api"), ("notifier", "herald-notifier")):
            dep = deployments.get(f"herald-{component}")
            if not dep:
                error(f"no Deployment herald-{component}")
                continue
            spec = dep["spec"]["template"]["spec"]
            c = spec["containers"][0]
            if c.get("command") != [binary]:
                error(f"herald-{component} must run {binary}")
            for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
                if c.get(probe, {}).get("httpGet", {}).get("path") != path:
                    error(f"herald-{component}: {probe} must GET {path}")
            res = c.get("resources", {})
            if not res.get("requests") or not res.get("limits", {}).get("memory"):
                error(f"herald-{component}: set resource requests and a memory limit")
            if "preStop" not in c.get("lifecycle", {}):
                error(f"herald-{component} has no preStop hook")
            ports = [p["containerPort"] for p in c.get("ports", [])]
            if ports != [SERVICE_PORTS[component]]:
                error(f"herald-{component} must expose {SERVICE_PORTS[component]}, not {ports}")
            env = {e["name"]: e.get("value") for e in c.get("env", [])}
            if env.get("HERALD_LISTEN") != f"0.0.0.0:{SERVICE_PORTS[component]}":
                error(f"herald-{component}: HERALD_LISTEN must be 0.0.0.0:{SERVICE_PORTS[component]}")
            if not spec.get("securityContext", {}).get("runAsNonRoot"):
                error(f"herald-{component} must run as non-root")
            if component == "gateway":
                pre = c["lifecycle"]["preStop"]
                pre_sleep = int(pre.get("exec", {}).get("command", ["sleep", "0"])[-1]) if "exec" in pre else int(
                    pre.get("sleep", {}).get("seconds", 0))
                grace = spec.get("terminationGracePeriodSeconds", 30)
                if grace <= pre_sleep + drain:
                    error(f"gateway terminationGracePeriodSeconds {grace} must exceed preStop {pre_sleep}s "
                          f"+ drain {drain}s")
                else:
                    ok(f"gateway grace {grace}s > preStop {pre_sleep}s + drain window {drain}s")
                min_ready = dep["spec"].get("minReadySeconds", 0)
                if min_ready < pre_sleep + drain:
                    error(f"gateway minReadySeconds {min_ready} < preStop {pre_sleep}s + drain {drain}s: "
                          "a rollout would drain several gateways at once")
        ok("Deployments: commands, probes, resources, preStop, ports, non-root")

        services = {s["metadata"]["name"]: s for s in by_kind.get("Service", [])}
        for ing in by_kind.get("Ingress", []):
            routes = []
            for rule in ing["spec"]["rules"]:
                for p in rule["http"]["paths"]:
                    svc = p["backend"]["service"]["name"]
                    if svc not in services:
                        error(f"Ingress routes {p['path']} to missing Service {svc}")
                    routes.append((p["path"], p["pathType"], svc))
            for path, service in ROUTES.items():
                got = ingress_match(routes, path.split("?")[0])
                if got != f"herald-{service}":
                    error(f"Ingress sends {path} to {got}, expected herald-{service}")
            ann = ing["metadata"].get("annotations", {})
            if int(ann.get("nginx.ingress.kubernetes.io/proxy-read-timeout", "0")) < 300:
                error("Ingress proxy-read-timeout must be long for WebSockets")
            ok(f"Ingress {ing['metadata']['name']}: {len(ROUTES)} public paths reach the right Service")

        targets = {h["spec"]["scaleTargetRef"]["name"] for h in by_kind.get("HorizontalPodAutoscaler", [])}
        for needed in ("herald-gateway", "herald-tasks-api"):
            if needed not in targets:
                error(f"no HorizontalPodAutoscaler for {needed}")
        for name in targets:
            if name not in deployments:
                error(f"HPA targets missing Deployment {name}")
            elif "replicas" in deployments[name]["spec"]:
                warn(f"{name} sets replicas although an HPA owns it (each apply resets the count)")
        pdb_covered = set()
        for pdb in by_kind.get("PodDisruptionBudget", []):
            sel = pdb["spec"]["selector"]["matchLabels"]
            for name, dep in deployments.items():
                labels = dep["spec"]["template"]["metadata"]["labels"]
                if all(labels.get(k) == v for k, v in sel.items()):
                    pdb_covered.add(name)
        for name in deployments:
            if name not in pdb_covered:
                error(f"no PodDisruptionBudget covers {name}")
        jobs = by_kind.get("Job", [])
        commands = [c.get("command") for j in jobs
                    for c in j["spec"]["template"]["spec"].get("initContainers", []) +
                    j["spec"]["template"]["spec"]["containers"]]
        for needed in (["herald-auth", "migrate"], ["herald-tasks-api", "migrate"]):
            if needed not in commands:
                error(f"no Job runs {' '.join(needed)}")
        policies = {p["metadata"]["name"] for p in by_kind.get("NetworkPolicy", [])}
        if "default-deny-ingress" not in policies:
            error("no default-deny-ingress NetworkPolicy")
        for sts in by_kind.get("StatefulSet", []):
            component = sts["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component")
            covered = any(
                p["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/component") == component
                for p in by_kind.get("NetworkPolicy", [])
            )
            if not covered:
                error(f"no NetworkPolicy admits the services to {sts['metadata']['name']}")
            if component == "redis":
                args = " ".join(sts["spec"]["template"]["spec"]["containers"][0].get("args", []))
                if "--appendonly yes" not in args or not sts["spec"].get("volumeClaimTemplates"):
                    error("in-cluster Redis must run with AOF on a persistent volume")
        ok("HPAs, PDBs, migration Job, NetworkPolicies, StatefulSets")


def ingress_match(routes: list[tuple[str, str, str]], path: str) -> str | None:
    """The Service an Ingress sends `path` to: Exact first, then the longest Prefix match
    (element-wise, as the Ingress spec defines it)."""
    for p, kind, svc in routes:
        if kind == "Exact" and p == path:
            return svc
    best, best_len = None, -1
    for p, kind, svc in routes:
        if kind != "Prefix":
            continue
        prefix = p.rstrip("/")
        if prefix == "" or path == prefix or path.startswith(prefix + "/"):
            if len(prefix) > best_len:
                best, best_len = svc, len(prefix)
    return best


# --- main -----------------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("compose", "k8s"):
        print(__doc__)
        return 2
    if argv[0] == "compose":
        compose = check_compose_file()
        names = set(compose["services"])
        exprs = check_prometheus(names)
        exprs += check_grafana(compose)
        check_collector()
        check_dockerfile(compose)
        check_nginx(names)
        print("metric names")
        check_metric_names("dashboard and alerts", exprs, metrics_in_code())
    else:
        check_k8s(argv[1:])
    if errors:
        print(f"\n{len(errors)} problem(s) found")
        return 1
    print(f"\nall checks passed ({len(warnings)} warning(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
