#!/usr/bin/env python3
"""The farm's own checks of its deployment files, run by deploy/check.sh.

Subcommands (each exits non-zero and prints `ERROR ...` lines on failure):
  sync-rules [--write]      k8s/base/monitoring/prometheusrule.yaml is generated
                            from deploy/prometheus/alerts.yml; check or rewrite it
  to-json RENDERED OUT      a rendered overlay (multi-document YAML) as a JSON array
  k8s-core RENDERED         core kinds against kubernetes-validate's bundled
                            schemas (strict: unknown fields are errors); custom
                            resources are left to crds.mjs, any other kind with no
                            schema is an error
  policy OVERLAY RENDERED   the farm's invariants on a rendered overlay (scaling,
                            drain, probes, security, resources, secrets, network,
                            broker timeout, monitoring)
  compose CONFIG_JSON       the same invariants on `docker compose config` output
  alerts                    alert conventions, runbook sections, and a firing and a
                            quiet promtool case for every alert
  alert-routes AMTOOL CFG   every alert reaches the Alertmanager receiver of its severity
  metrics                   deploy/metrics.txt naming, its names against the Rust
                            sources, and every metric in alerts and dashboard known
  dashboard-rules OUT       the dashboard's expressions as a rules file, so that
                            promtool parses every one of them
  docker-context            deploy/Dockerfile.dockerignore lets in everything the
                            build needs: the workspace members, path dependencies,
                            target paths of Cargo.toml, and the Dockerfile's COPY sources

Needs PyYAML (and kubernetes-validate for k8s-core): deploy/.tools/venv has both.
"""

import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ALERT_TESTS = DEPLOY / "prometheus" / "alerts.test.yml"
RULE = ROOT / "k8s" / "base" / "monitoring" / "prometheusrule.yaml"
RUNBOOK = DEPLOY / "RUNBOOK.md"
METRICS = DEPLOY / "metrics.txt"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "farm.json"
K8S_VERSIONS = ["1.30.0", "1.37.0"]
CUSTOM_GROUPS = {"keda.sh", "monitoring.coreos.com", "postgresql.cnpg.io", "rabbitmq.com"}

errors = []


def error(message):
    errors.append(message)
    print(f"ERROR {message}")


def finish(what):
    if errors:
        print(f"{what}: {len(errors)} problem(s)")
        return 1
    print(f"{what}: ok")
    return 0


def load_all(path):
    return [d for d in yaml.safe_load_all(Path(path).read_text()) if d]


# --- sync-rules ---------------------------------------------------------

RULE_HEADER = """\
# GENERATED from deploy/prometheus/alerts.yml by `deploy/check.sh --sync-rules`;
# do not edit: deploy/check.sh fails when the two disagree.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: farm-alerts
spec:
"""


def rule_text():
    body = ALERTS.read_text()
    start = body.index("groups:")
    return RULE_HEADER + "".join(f"  {line}" if line.strip() else line for line in body[start:].splitlines(True))


def cmd_sync_rules(args):
    text = rule_text()
    if "--write" in args:
        RULE.write_text(text)
        print(f"wrote {RULE.relative_to(ROOT)}")
        return 0
    if not RULE.exists():
        error(f"{RULE.relative_to(ROOT)} is missing: run deploy/check.sh --sync-rules")
        return finish("sync-rules")
    committed = yaml.safe_load(RULE.read_text())
    source = yaml.safe_load(ALERTS.read_text())
    if (committed or {}).get("spec", {}).get("groups") != source.get("groups"):
        error(f"{RULE.relative_to(ROOT)} and deploy/prometheus/alerts.yml define different alerts: "
              "run deploy/check.sh --sync-rules")
    elif RULE.read_text() != text:
        error(f"{RULE.relative_to(ROOT)} is not the generated text: run deploy/check.sh --sync-rules")
    return finish("sync-rules")


# --- to-json / k8s-core -------------------------------------------------

def cmd_to_json(args):
    docs = load_all(args[0])
    Path(args[1]).write_text(json.dumps(docs))
    return 0


def group_of(api_version):
    return api_version.split("/")[0] if "/" in api_version else ""


def cmd_k8s_core(args):
    import kubernetes_validate.utils as kv

    docs = load_all(args[0])
    core = custom = 0
    for doc in docs:
        name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        if group_of(doc.get("apiVersion", "")) in CUSTOM_GROUPS:
            custom += 1
            continue
        core += 1
        for version in K8S_VERSIONS:
            try:
                kv.validate(doc, version, strict=True)
            except kv.ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                error(f"{name} (Kubernetes {version}): {path}: {e.message}")
            except kv.SchemaNotFoundError:
                error(f"{name}: no Kubernetes {version} schema for {doc.get('apiVersion')} {doc.get('kind')}")
                break
    print(f"kubernetes-validate --strict, Kubernetes {' and '.join(K8S_VERSIONS)}: {core} core objects; "
          f"{custom} custom resources left to crds.mjs")
    return finish("k8s-core")


# --- policy -------------------------------------------------------------

def parse_env_file(text):
    env = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            env[key.strip()] = value.strip()
    return env


def consumer_timeout_ms(text):
    m = re.search(r"^\s*consumer_timeout\s*=\s*(\d+)\s*$", text or "", re.M)
    return int(m.group(1)) if m else None


def matches(selector, labels):
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        op, key, values = expr.get("operator"), expr.get("key"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def pod_checks(name, pod, is_farm):
    """Security context, resources and a writable /tmp on one pod template."""
    psc = pod.get("securityContext") or {}
    pod_seccomp = (psc.get("seccompProfile") or {}).get("type")
    volumes = {v.get("name"): v for v in pod.get("volumes") or []}
    for c in (pod.get("initContainers") or []) + (pod.get("containers") or []):
        where = f"{name} container {c.get('name')}"
        sc = c.get("securityContext") or {}
        if not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
            error(f"{where}: runAsNonRoot must be true")
        if sc.get("readOnlyRootFilesystem") is not True:
            error(f"{where}: readOnlyRootFilesystem must be true")
        if sc.get("allowPrivilegeEscalation") is not False:
            error(f"{where}: allowPrivilegeEscalation must be false")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            error(f"{where}: capabilities.drop must include ALL")
        if ((sc.get("seccompProfile") or {}).get("type") or pod_seccomp) != "RuntimeDefault":
            error(f"{where}: seccompProfile must be RuntimeDefault")
        res = c.get("resources") or {}
        for kind in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if resource not in (res.get(kind) or {}):
                    error(f"{where}: resources.{kind}.{resource} is missing")
        if is_farm:
            mounts = {m.get("mountPath"): m.get("name") for m in c.get("volumeMounts") or []}
            if "/tmp" not in mounts or "emptyDir" not in volumes.get(mounts["/tmp"], {}):
                error(f"{where}: a read-only root needs an emptyDir at /tmp")


def check_price_book(text, where):
    """The book parses as TOML and names its version (the farm checks the rest at start)."""
    try:
        import tomllib
    except ImportError:  # Python < 3.11: the syntax is left to the farm
        return
    try:
        book = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        error(f"{where}: price-book.toml is not TOML: {e}")
        return
    if not str(book.get("version", "")).strip():
        error(f"{where}: price-book.toml has no version (quotes name it; the quote cache is keyed by it)")


def env_of(container):
    return {e["name"]: e for e in container.get("env") or []}


def secretish(name):
    return any(word in name for word in ("PASSWORD", "SECRET", "TOKEN", "AMQP_URL", "DATABASE_URL", "REDIS_URL",
                                         "ACCESS_KEY"))


def cmd_policy(args):
    overlay, rendered = args[0], args[1]
    docs = load_all(rendered)
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    get = lambda kind: by_kind.get(kind, [])  # noqa: E731

    configmaps = {c["metadata"]["name"]: c for c in get("ConfigMap")}
    farm_cms = [c for n, c in configmaps.items() if n.startswith("farm-config")]
    if len(farm_cms) != 1:
        error(f"expected one farm-config ConfigMap, found {len(farm_cms)}")
        return finish(f"policy {overlay}")
    config = farm_cms[0].get("data") or {}
    for key in ("FARM_FAST_DEADLINE_S", "FARM_SLOW_DEADLINE_S", "FARM_BROKER_CONSUMER_TIMEOUT_S", "FARM_QUEUE_PREFIX",
                "FARM_LOG_FORMAT", "FARM_WORKER_SLOTS"):
        if key not in config:
            error(f"farm-config lacks {key}")
    for key in config:
        if secretish(key):
            error(f"farm-config holds {key}, a secret: it belongs in a Secret")
    deadline = {"fast": float(config.get("FARM_FAST_DEADLINE_S", 300)),
                "slow": float(config.get("FARM_SLOW_DEADLINE_S", 2700))}
    broker_timeout_s = float(config.get("FARM_BROKER_CONSUMER_TIMEOUT_S", 3600))
    prefix = config.get("FARM_QUEUE_PREFIX", "farm")
    if config.get("FARM_LOG_FORMAT") != "json":
        error("farm-config: FARM_LOG_FORMAT must be json in a cluster")
    for lane, d in deadline.items():
        if d + 60 >= broker_timeout_s:
            error(f"the {lane} deadline {d:.0f} s + 60 s is not under FARM_BROKER_CONSUMER_TIMEOUT_S "
                  f"{broker_timeout_s:.0f} s: the worker would refuse to start")

    deployments = {d["metadata"]["name"]: d for d in get("Deployment")}
    farm_deps = {n: d for n, d in deployments.items()
                 if (d["spec"]["template"]["metadata"].get("labels") or {}).get("app.kubernetes.io/name") == "farm"}
    secrets = {s["metadata"]["name"]: s for s in get("Secret")}

    # Every pod we define.
    for kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        for d in get(kind):
            pod = d["spec"]["template"]["spec"]
            pod_checks(f"{kind}/{d['metadata']['name']}", pod, d["metadata"]["name"] in farm_deps)

    # Farm pods: configuration from the ConfigMap, secrets from Secrets.
    for name, d in farm_deps.items():
        pod = d["spec"]["template"]["spec"]
        for c in pod["containers"]:
            refs = [e.get("configMapRef", {}).get("name") for e in c.get("envFrom") or []]
            if not any(r in configmaps and r.startswith("farm-config") for r in refs):
                error(f"Deployment/{name}: settings must come from the farm-config ConfigMap (envFrom)")
            for var, e in env_of(c).items():
                if secretish(var) and "value" in e:
                    error(f"Deployment/{name}: {var} is a literal; secrets come from a Secret (secretKeyRef)")
                ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                if ref and ref["name"] in secrets:
                    data = {**(secrets[ref["name"]].get("data") or {}), **(secrets[ref["name"]].get("stringData") or {})}
                    if ref["key"] not in data:
                        error(f"Deployment/{name}: Secret {ref['name']} has no key {ref['key']}")
                elif ref and ref["name"] not in ("farm-pg-app",) and overlay != "prod":
                    error(f"Deployment/{name}: Secret {ref['name']} is not in the {overlay} overlay")

    # Secrets: placeholders in dev, none at all in prod (a secret manager makes them).
    for sname, s in secrets.items():
        values = {**(s.get("stringData") or {}), **(s.get("data") or {})}
        if overlay == "prod":
            error(f"Secret/{sname} is in the prod render: prod Secrets come from the secret manager, not the repo")
        elif not all("CHANGE-ME" in str(v) for v in values.values()):
            error(f"Secret/{sname}: every committed value must be a CHANGE-ME placeholder")

    # Pricing: the price book and profile from one generated ConfigMap,
    # mounted read-only where FARM_PRICE_BOOK and FARM_FDM_PROFILE point.
    pricing = [c for n, c in configmaps.items() if n.startswith("farm-pricing")]
    if len(pricing) != 1:
        error(f"expected one farm-pricing ConfigMap, found {len(pricing)}")
    else:
        files = pricing[0].get("data") or {}
        for key in ("price-book.toml", "profile.ini"):
            if key not in files:
                error(f"ConfigMap {pricing[0]['metadata']['name']} lacks {key}")
        check_price_book(files.get("price-book.toml", ""), pricing[0]["metadata"]["name"])
        for var, key in (("FARM_PRICE_BOOK", "price-book.toml"), ("FARM_FDM_PROFILE", "profile.ini")):
            path = config.get(var, "")
            if not path.endswith("/" + key):
                error(f"farm-config: {var} must point at the mounted {key}, not {path!r}")
        for name, d in farm_deps.items():
            pod = d["spec"]["template"]["spec"]
            volumes = {v["name"]: v for v in pod.get("volumes") or []}
            for c in pod["containers"]:
                mounted = [m for m in c.get("volumeMounts") or []
                           if (volumes.get(m.get("name")) or {}).get("configMap", {}).get("name")
                           == pricing[0]["metadata"]["name"]]
                if not mounted:
                    error(f"Deployment/{name}: the farm-pricing ConfigMap is not mounted")
                for m in mounted:
                    if m.get("readOnly") is not True:
                        error(f"Deployment/{name}: mount the farm-pricing ConfigMap readOnly")
                    for var in ("FARM_PRICE_BOOK", "FARM_FDM_PROFILE"):
                        if not config.get(var, "").startswith(m["mountPath"].rstrip("/") + "/"):
                            error(f"Deployment/{name}: {var} ({config.get(var)}) is not under {m['mountPath']}")

    # The API group.
    apis = [n for n, d in farm_deps.items()
            if d["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component") == "api"]
    hpas = get("HorizontalPodAutoscaler")
    if apis != ["mes-api"]:
        error(f"expected one API Deployment, mes-api; found {apis}")
    else:
        api = farm_deps["mes-api"]
        if (api["spec"].get("replicas") or 1) < 2:
            error("mes-api: at least 2 replicas")
        c = api["spec"]["template"]["spec"]["containers"][0]
        if (c.get("livenessProbe") or {}).get("httpGet", {}).get("path") != "/healthz":
            error("mes-api: liveness probe must GET /healthz")
        if (c.get("readinessProbe") or {}).get("httpGet", {}).get("path") != "/readyz":
            error("mes-api: readiness probe must GET /readyz")
        api_hpas = [h for h in hpas if h["spec"]["scaleTargetRef"].get("name") == "mes-api"]
        if len(api_hpas) != 1:
            error(f"mes-api: expected one HPA, found {len(api_hpas)}")
        else:
            h = api_hpas[0]["spec"]
            if h.get("minReplicas", 1) < 2:
                error("mes-api HPA: minReplicas must be >= 2")
            if not any(m.get("type") == "Resource" and m["resource"]["name"] == "cpu" for m in h.get("metrics", [])):
                error("mes-api HPA: must scale on CPU")
        labels = api["spec"]["template"]["metadata"]["labels"]
        if not any(matches(p["spec"]["selector"], labels) for p in get("PodDisruptionBudget")):
            error("mes-api: no PodDisruptionBudget selects its pods")
        if not any(matches({"matchLabels": s["spec"].get("selector") or {}}, labels) for s in get("Service")):
            error("mes-api: no Service selects its pods")

    # The worker groups: one Deployment and one ScaledObject per lane.
    scaled = {s["spec"]["scaleTargetRef"]["name"]: s for s in get("ScaledObject")}
    auths = {a["metadata"]["name"]: a for a in get("TriggerAuthentication")}
    summary = []
    for lane in ("fast", "slow"):
        name = f"worker-{lane}"
        d = farm_deps.get(name)
        if not d:
            error(f"no Deployment {name}")
            continue
        pod = d["spec"]["template"]["spec"]
        c = pod["containers"][0]
        if c.get("args", [])[:3] != ["worker", "--lane", lane]:
            error(f"{name}: args must be [worker, --lane, {lane}]")
        if "replicas" in d["spec"]:
            error(f"{name}: no replicas field; its ScaledObject owns the count")
        grace = pod.get("terminationGracePeriodSeconds", 30)
        if not isinstance(grace, int):
            error(f"{name}: terminationGracePeriodSeconds must be an integer, not {grace!r}")
            continue
        shutdown = float(env_of(c).get("FARM_SHUTDOWN_GRACE_S", {}).get("value", deadline[lane]))
        if grace < max(deadline[lane], shutdown) + 60:
            error(f"{name}: terminationGracePeriodSeconds {grace} must exceed the {lane} deadline "
                  f"({deadline[lane]:.0f} s) and FARM_SHUTDOWN_GRACE_S ({shutdown:.0f} s) by at least 60 s")
        pre = ((c.get("lifecycle") or {}).get("preStop") or {}).get("exec", {}).get("command") or []
        if not any("TERM" in part for part in pre):
            error(f"{name}: needs a preStop hook that sends SIGTERM and waits for the drain")
        if (c.get("livenessProbe") or {}).get("httpGet", {}).get("path") != "/healthz":
            error(f"{name}: liveness probe must GET /healthz")
        if (c.get("readinessProbe") or {}).get("httpGet", {}).get("path") != "/readyz":
            error(f"{name}: readiness probe must GET /readyz")
        if any(h["spec"]["scaleTargetRef"].get("name") == name for h in hpas):
            error(f"{name}: scaled by its ScaledObject only, not by a hand-written HPA")
        so = scaled.get(name)
        if not so:
            error(f"{name}: no ScaledObject targets it")
            continue
        spec = so["spec"]
        lo, hi = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
        if lane == "fast" and lo < 1:
            error(f"ScaledObject {name}: the fast lane keeps at least 1 replica")
        if lane == "slow" and lo != 0:
            error(f"ScaledObject {name}: the slow lane scales from 0 (minReplicaCount 0)")
        if hi < max(lo, 1):
            error(f"ScaledObject {name}: maxReplicaCount {hi} below minReplicaCount {lo}")
        triggers = spec.get("triggers") or []
        if len(triggers) != 1 or triggers[0].get("type") != "rabbitmq":
            error(f"ScaledObject {name}: expected one rabbitmq trigger")
            continue
        meta = triggers[0].get("metadata") or {}
        if meta.get("protocol") != "http":
            error(f"ScaledObject {name}: protocol must be http (the management API counts unacked jobs)")
        if meta.get("mode") != "QueueLength":
            error(f"ScaledObject {name}: mode must be QueueLength")
        if meta.get("queueName") != f"{prefix}.pricing.jobs.{lane}":
            error(f"ScaledObject {name}: queueName must be {prefix}.pricing.jobs.{lane}, not {meta.get('queueName')}")
        if "host" in meta:
            error(f"ScaledObject {name}: the management URL comes from the TriggerAuthentication, not metadata")
        auth = auths.get((triggers[0].get("authenticationRef") or {}).get("name"))
        if not auth or not any(r.get("parameter") == "host" for r in auth["spec"].get("secretTargetRef") or []):
            error(f"ScaledObject {name}: its TriggerAuthentication must provide `host` from a Secret")
        summary.append(f"{name} (KEDA {lo}..{hi} on {meta.get('queueName')}, grace {grace} s)")

    # Broker and database.
    rabbits = get("RabbitmqCluster")
    if len(rabbits) != 1:
        error(f"expected one RabbitmqCluster, found {len(rabbits)}")
    else:
        r = rabbits[0]["spec"]
        if r.get("replicas") != 3:
            error("RabbitmqCluster: 3 replicas")
        ms = consumer_timeout_ms((r.get("rabbitmq") or {}).get("additionalConfig"))
        if ms is None:
            error("RabbitmqCluster: additionalConfig must set consumer_timeout")
        elif ms != broker_timeout_s * 1000:
            error(f"RabbitmqCluster consumer_timeout {ms} ms != FARM_BROKER_CONSUMER_TIMEOUT_S "
                  f"{broker_timeout_s:.0f} s")
    pgs = [p for p in get("Cluster") if p["apiVersion"].startswith("postgresql.cnpg.io/")]
    if len(pgs) != 1 or pgs[0]["spec"].get("instances") != 3:
        error("expected one CloudNativePG Cluster with 3 instances")

    # Network: default deny, and every farm group reachable on its port.
    policies = get("NetworkPolicy")
    if not any(p["spec"].get("podSelector") == {} and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
               and not p["spec"].get("ingress") and not p["spec"].get("egress") for p in policies):
        error("no default-deny NetworkPolicy (empty podSelector, Ingress and Egress, no rules)")
    for name, d in farm_deps.items():
        labels = d["spec"]["template"]["metadata"]["labels"]
        port = 8080 if name == "mes-api" else 9091
        selected = [p for p in policies if matches(p["spec"].get("podSelector") or {}, labels)]
        if not any(port in [q.get("port") for rule in p["spec"].get("ingress") or [] for q in rule.get("ports") or []]
                   for p in selected):
            error(f"Deployment/{name}: no NetworkPolicy admits traffic on port {port}")
        if not any(p["spec"].get("egress") for p in selected if p["spec"].get("podSelector")):
            error(f"Deployment/{name}: no NetworkPolicy gives it any egress")

    # Monitoring: ServiceMonitors reach every farm Service; the rule is alerts.yml.
    monitors = get("ServiceMonitor")
    for svc in get("Service"):
        job = (svc["metadata"].get("labels") or {}).get("farm-scrape-job")
        if job and not any(matches(m["spec"].get("selector") or {}, svc["metadata"].get("labels") or {})
                           for m in monitors):
            error(f"Service/{svc['metadata']['name']}: no ServiceMonitor selects it")
    rules = get("PrometheusRule")
    source = yaml.safe_load(ALERTS.read_text())["groups"]
    if len(rules) != 1 or rules[0]["spec"].get("groups") != source:
        error("expected one PrometheusRule with exactly the groups of deploy/prometheus/alerts.yml")

    if apis == ["mes-api"]:
        api_h = [h for h in hpas if h["spec"]["scaleTargetRef"].get("name") == "mes-api"]
        if api_h:
            h = api_h[0]["spec"]
            summary.insert(0, f"mes-api (HPA {h.get('minReplicas')}..{h.get('maxReplicas')} on CPU)")
    print(f"{overlay}: API group and worker groups: " + "; ".join(summary))
    return finish(f"policy {overlay}")


# --- compose ------------------------------------------------------------

def duration_s(text):
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)(h|m|s|ms|us|ns)", str(text)):
        total += float(number) * {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}[unit]
    return total


def cmd_compose(args):
    cfg = json.loads(Path(args[0]).read_text())
    services = cfg.get("services", {})
    conf = (DEPLOY / "rabbitmq" / "farm.conf").read_text()
    ms = consumer_timeout_ms(conf)
    if ms is None:
        error("deploy/rabbitmq/farm.conf must set consumer_timeout")
    for role in ("api", "worker-fast", "worker-slow", "postgres", "rabbitmq", "s3", "redis", "prometheus", "grafana"):
        if role not in services:
            error(f"compose: no service {role}")
    rabbit = services.get("rabbitmq", {})
    if not any(str(v.get("target", "")).startswith("/etc/rabbitmq/conf.d/") and
               str(v.get("source", "")).endswith("rabbitmq/farm.conf") for v in rabbit.get("volumes", [])):
        error("compose: rabbitmq must mount deploy/rabbitmq/farm.conf into /etc/rabbitmq/conf.d/")
    if "management" not in str(rabbit.get("image", "")):
        error("compose: the rabbitmq image must carry the management plugin")
    for name in ("api", "worker-fast", "worker-slow"):
        s = services.get(name)
        if not s:
            continue
        env = s.get("environment") or {}
        timeout = env.get("FARM_BROKER_CONSUMER_TIMEOUT_S")
        if ms is not None and (timeout is None or float(timeout) * 1000 != ms):
            error(f"compose {name}: FARM_BROKER_CONSUMER_TIMEOUT_S ({timeout}) must equal consumer_timeout "
                  f"{ms} ms / 1000")
        if env.get("FARM_LOG_FORMAT") != "json":
            error(f"compose {name}: FARM_LOG_FORMAT must be json")
        if not s.get("read_only"):
            error(f"compose {name}: read_only root filesystem")
        if "ALL" not in (s.get("cap_drop") or []):
            error(f"compose {name}: cap_drop ALL")
        if name.startswith("worker-"):
            lane = name.split("-")[1]
            if s.get("command", [])[:3] != ["worker", "--lane", lane]:
                error(f"compose {name}: command must be [worker, --lane, {lane}]")
            d = float(env.get(f"FARM_{lane.upper()}_DEADLINE_S", 300 if lane == "fast" else 2700))
            grace = duration_s(s.get("stop_grace_period", "10s"))
            if grace < d + 60:
                error(f"compose {name}: stop_grace_period {grace:.0f} s must exceed the {lane} deadline {d:.0f} s "
                      "by 60 s, or a stop kills running jobs")
    pricing = DEPLOY.parent / "k8s" / "base" / "pricing"
    for name in ("api", "worker-fast", "worker-slow"):
        s = services.get(name)
        if not s:
            continue
        env = s.get("environment") or {}
        mounts = [v for v in s.get("volumes") or [] if Path(str(v.get("source", ""))).resolve() == pricing.resolve()]
        if not mounts or not all(v.get("read_only") for v in mounts):
            error(f"compose {name}: mount k8s/base/pricing (the files the ConfigMap is made of) read-only")
        for var, key in (("FARM_PRICE_BOOK", "price-book.toml"), ("FARM_FDM_PROFILE", "profile.ini")):
            if not any(env.get(var) == f"{str(v.get('target', '')).rstrip('/')}/{key}" for v in mounts):
                error(f"compose {name}: {var} must point at {key} in the mounted pricing folder")
    check_price_book((pricing / "price-book.toml").read_text(), "k8s/base/pricing")
    prom = services.get("prometheus", {})
    if not any(str(v.get("source", "")).endswith("prometheus/alerts.yml") for v in prom.get("volumes", [])):
        error("compose: prometheus must load deploy/prometheus/alerts.yml")
    prom_cfg = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {j["job_name"] for j in prom_cfg.get("scrape_configs", [])}
    for job in ("farm-api", "farm-worker-fast", "farm-worker-slow"):
        if job not in jobs:
            error(f"deploy/prometheus/prometheus.yml: no scrape job {job}")
    if "/etc/prometheus/alerts.yml" not in prom_cfg.get("rule_files", []):
        error("deploy/prometheus/prometheus.yml must load /etc/prometheus/alerts.yml")
    return finish("compose policy")


# --- alerts -------------------------------------------------------------

def anchor(heading):
    return re.sub(r"[^a-z0-9 _-]", "", heading.strip().lower()).replace(" ", "-")


def cmd_alerts(args):
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    anchors = {anchor(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", RUNBOOK.read_text(), re.M)}
    alerts = []
    for g in groups:
        for r in g["rules"]:
            if "alert" not in r:
                continue
            name = r["alert"]
            alerts.append(name)
            if not re.fullmatch(r"Farm[A-Z][A-Za-z0-9]+", name):
                error(f"{name}: alert names are CamelCase and start with Farm")
            if (r.get("labels") or {}).get("severity") not in ("critical", "warning"):
                error(f"{name}: labels.severity must be critical or warning")
            ann = r.get("annotations") or {}
            for key in ("summary", "description", "runbook_url"):
                if not ann.get(key):
                    error(f"{name}: annotations.{key} is missing")
            url = ann.get("runbook_url", "")
            if not url.startswith("deploy/RUNBOOK.md#") or url.split("#", 1)[1] not in anchors:
                error(f"{name}: runbook_url {url!r} is not a section of deploy/RUNBOOK.md")
    if len(alerts) != len(set(alerts)):
        error("alert names must be unique")
    tests = yaml.safe_load(ALERT_TESTS.read_text())
    firing, quiet = set(), set()
    for t in tests.get("tests", []):
        for case in t.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    for name in alerts:
        if name not in firing:
            error(f"{name}: alerts.test.yml has no case where it fires")
        if name not in quiet:
            error(f"{name}: alerts.test.yml has no case where it stays quiet")
    for name in (firing | quiet) - set(alerts):
        error(f"alerts.test.yml tests {name}, which alerts.yml does not define")
    required = {"FarmFastLaneBacklogOld", "FarmSlowLaneBacklogOld", "FarmJobsDeadLettered", "FarmJobFailureRateHigh",
                "FarmFastLaneNoConsumers", "FarmSlowLaneNoConsumers", "FarmApiLatencyHigh", "FarmOutboxRelayLagging",
                "FarmDatabaseUnreachable", "FarmBrokerUnreachable", "FarmTargetDown"}
    for name in sorted(required - set(alerts)):
        error(f"alerts.yml lacks {name} (issue 7 asks for it)")
    # An order may be PRICING for a whole slow-lane run: the stuck-order
    # alert must not fire before the slow deadline has passed.
    deadline = float(parse_env_file((ROOT / "k8s" / "base" / "farm.env").read_text()).get("FARM_SLOW_DEADLINE_S", 2700))
    for g in groups:
        for r in g["rules"]:
            if r.get("alert") == "FarmOrdersStuckPricing":
                m = re.search(r"farm_orders_pricing_oldest_age_seconds\)\s*>\s*(\d+)", r["expr"])
                if not m or float(m.group(1)) < deadline + 60:
                    error(f"FarmOrdersStuckPricing: its threshold must exceed FARM_SLOW_DEADLINE_S ({deadline:.0f} s) "
                          "+ 60 s, or it fires on orders whose job may still be running")
    print(f"{len(alerts)} alerts, each with a firing and a quiet test case")
    return finish("alerts")


def cmd_alert_routes(args):
    """Every alert of alerts.yml reaches the receiver its severity names."""
    import subprocess
    amtool, config = args[0], args[1]
    want = {"critical": "farm-pager", "warning": "farm-tickets"}
    count = 0
    for g in yaml.safe_load(ALERTS.read_text())["groups"]:
        for r in g["rules"]:
            if "alert" not in r:
                continue
            labels = {**(r.get("labels") or {}), "alertname": r["alert"]}
            done = subprocess.run([amtool, "config", "routes", "test", f"--config.file={config}",
                                   *[f"{k}={v}" for k, v in labels.items()]], capture_output=True, text=True)
            got = done.stdout.strip()
            if got != want.get(labels.get("severity"), "?"):
                error(f"{r['alert']} (severity {labels.get('severity')}) routes to {got!r}, "
                      f"not {want.get(labels.get('severity'))!r}")
            count += 1
    print(f"{count} alerts routed by severity")
    return finish("alert-routes")


# --- metrics ------------------------------------------------------------

def read_metrics():
    known = {}
    for line in METRICS.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) < 3:
            error(f"metrics.txt: malformed line {line!r}")
            continue
        known[parts[0]] = {"type": parts[1], "status": parts[2]}
    return known


def names_in(expr):
    return set(re.findall(r"\b(farm_[a-z0-9_]+|up)\b(?!\s*\()", expr))


def dashboard_exprs():
    board = json.loads(DASHBOARD.read_text())
    out = []
    for panel in board.get("panels", []):
        for target in panel.get("targets", []):
            if target.get("expr"):
                out.append((panel.get("title"), target["expr"]))
    return out


def alert_exprs():
    out = []
    for g in yaml.safe_load(ALERTS.read_text())["groups"]:
        for r in g["rules"]:
            out.append((r.get("alert") or r.get("record"), r["expr"]))
    return out


def check_known(where, expr, known):
    for name in names_in(expr):
        base, suffix = name, None
        for s in ("_bucket", "_sum", "_count"):
            if name.endswith(s) and name[: -len(s)] in known and known[name[: -len(s)]]["type"] == "histogram":
                base, suffix = name[: -len(s)], s
        if base not in known:
            error(f"{where}: {name} is not in deploy/metrics.txt")
        elif known[base]["type"] == "histogram" and suffix is None:
            error(f"{where}: histogram {name} is queried as {name}_bucket, _sum or _count")
        elif known[base]["type"] == "counter" and not re.search(
                rf"(rate|increase|irate|resets)\s*\(\s*{re.escape(name)}\b", expr):
            error(f"{where}: counter {name} is used without rate() or increase()")


def cmd_metrics(args):
    known = read_metrics()
    sources = "\n".join(p.read_text() for d in ("api", "scheduler", "src") for p in (ROOT / d).rglob("*.rs"))
    for name, m in known.items():
        if m["type"] not in ("counter", "gauge", "histogram"):
            error(f"metrics.txt: {name} has unknown type {m['type']}")
        if m["status"] == "builtin":
            continue
        if not re.fullmatch(r"farm_[a-z][a-z0-9_]*", name):
            error(f"metrics.txt: {name} must be snake_case with the farm_ prefix")
        if m["type"] == "counter" and not name.endswith("_total"):
            error(f"metrics.txt: counter {name} must end in _total")
        if m["type"] != "counter" and name.endswith("_total"):
            error(f"metrics.txt: only counters end in _total ({name} is a {m['type']})")
        if m["type"] == "histogram" and not name.endswith("_seconds"):
            error(f"metrics.txt: histogram {name} should carry its unit (_seconds)")
        if re.search(r"_(duration|latency|age|time|seconds)(_|$)", name) and not re.search(r"_seconds(_total)?$", name):
            error(f"metrics.txt: {name} measures time and must end in _seconds")
        quoted = f'"{name}"' in sources
        if m["status"] == "exists" and not quoted:
            error(f"metrics.txt: {name} is marked exists but no Rust source names it")
        if m["status"] == "planned" and quoted:
            print(f"note: {name} now exists in the sources; mark it `exists` in deploy/metrics.txt")
        if m["status"] not in ("exists", "planned"):
            error(f"metrics.txt: {name} has unknown status {m['status']}")
    for where, expr in alert_exprs():
        check_known(f"alert {where}", expr, known)
    used = set()
    for where, expr in dashboard_exprs():
        check_known(f"dashboard panel {where!r}", expr, known)
        used |= names_in(expr)
    required = ["farm_queue_messages", "farm_queue_oldest_job_age_seconds", "farm_job_queued_seconds_bucket",
                "farm_job_compute_seconds_bucket", "farm_triangles_priced_total", "farm_jobs_total",
                "farm_http_request_duration_seconds_bucket", "farm_quote_cache_hits_total",
                "farm_quote_cache_misses_total", "farm_operator_cache_requests_total", "farm_dead_letters_total",
                "farm_jobs_in_flight", "farm_database_up", "farm_broker_up"]
    for name in required:
        if name not in used:
            error(f"the dashboard has no panel on {name}")
    print(f"{len(known)} metrics listed; alerts and {len(dashboard_exprs())} dashboard queries use only those")
    return finish("metrics")


def cmd_dashboard_rules(args):
    substitutions = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h", "$lane": "fast|slow",
                     "${lane}": "fast|slow"}
    rules = []
    for i, (title, expr) in enumerate(dashboard_exprs()):
        for var, value in substitutions.items():
            expr = expr.replace(var, value)
        if "$" in expr:
            error(f"dashboard panel {title!r}: unknown variable in {expr}")
        rules.append({"record": f"dashboard:panel_{i}", "expr": expr})
    Path(args[0]).write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, sort_keys=False))
    return finish("dashboard-rules")


# --- docker-context -------------------------------------------------------

def cmd_docker_context(args):
    manifest = (ROOT / "Cargo.toml").read_text()
    required = {"Cargo.toml", "Cargo.lock"}
    members = re.search(r"^members\s*=\s*\[([^\]]*)\]", manifest, re.M)
    if not members:
        error("Cargo.toml: no workspace members found")
    else:
        required |= set(re.findall(r'"([^"]+)"', members.group(1)))
    # Path dependencies and target paths ([[bin]], [[test]], [lib], ...).
    required |= {p.strip("/") for p in re.findall(r'path\s*=\s*"([^"]+)"', manifest)}
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    for line in re.findall(r"^COPY\s+(.+)$", dockerfile, re.M):
        words = [w for w in line.split() if not w.startswith("--")]
        if "--from=" in line or len(words) < 2:
            continue
        required |= {w for w in words[:-1] if w != "."}
    ignore = [line.strip() for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    if not ignore or ignore[0] != "*":
        error("Dockerfile.dockerignore must start with `*` (an allow-list)")
    included = [line[1:].rstrip("/") for line in ignore if line.startswith("!")]
    excluded = [line.removeprefix("**/").rstrip("/") for line in ignore[1:] if not line.startswith("!")]
    under = lambda path, prefix: path == prefix or path.startswith(prefix + "/")  # noqa: E731
    for path in sorted(required):
        if not any(under(path, inc) for inc in included):
            error(f"Dockerfile.dockerignore keeps {path} out of the build context, and the build needs it")
        if any(under(path, exc) for exc in excluded):
            error(f"Dockerfile.dockerignore excludes {path} again, and the build needs it")
        if not (ROOT / path).exists():
            error(f"{path} (needed by the build) does not exist")
    print(f"the build context lets in: {', '.join(sorted(required))}")
    return finish("docker-context")


COMMANDS = {
    "docker-context": cmd_docker_context,
    "sync-rules": cmd_sync_rules,
    "to-json": cmd_to_json,
    "k8s-core": cmd_k8s_core,
    "policy": cmd_policy,
    "compose": cmd_compose,
    "alerts": cmd_alerts,
    "alert-routes": cmd_alert_routes,
    "metrics": cmd_metrics,
    "dashboard-rules": cmd_dashboard_rules,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(__doc__)
        sys.exit(2)
    sys.exit(COMMANDS[sys.argv[1]](sys.argv[2:]))
