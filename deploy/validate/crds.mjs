// Checks the custom resources of a rendered overlay against their schemas.
//
//   node deploy/validate/crds.mjs rendered.json
//
// rendered.json is a JSON array of every object the overlay renders (farmcheck.py
// to-json writes it). Core kinds are kubernetes-validate's job; this checks:
//   - KEDA ScaledObject, TriggerAuthentication: @kubernetes-models/keda
//   - ServiceMonitor, PodMonitor, PrometheusRule: @kubernetes-models/prometheus-operator
//   - CloudNativePG Cluster: @kubernetes-models/cloudnative-pg
// Each model's validate() applies the JSON schema the package ships (types,
// required fields, enums, patterns). Those schemas accept unknown fields, and
// so would `kubectl apply` silently drop a misspelt one; so every object is also
// walked against the interfaces in the package's type declarations, and a
// field they do not declare is an error.
//   - RabbitmqCluster: no schema package exists on the registries this project
//     can reach, so checkRabbitmqCluster below is a hand-written structural
//     check of the fields the farm relies on (an allow-list of spec fields
//     from the operator's CRD, with their types).
// Any other custom kind is an error: it would go unchecked.

import { readFileSync, existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
// The packages live in the repo-local tools dir (deploy/.tools/npm), which is
// not on this script's module search path (ESM ignores NODE_PATH), so they
// are imported by absolute path.
const nodeModules = process.env.FARM_NODE_MODULES || resolve(here, "..", ".tools", "npm", "node_modules");
const load = (spec) => import(pathToFileURL(join(nodeModules, spec)).href);
const { ScaledObject, TriggerAuthentication } = await load("@kubernetes-models/keda/keda.sh/v1alpha1/index.js");
const { ServiceMonitor, PodMonitor, PrometheusRule } = await load(
  "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/index.js",
);
const { Cluster } = await load("@kubernetes-models/cloudnative-pg/postgresql.cnpg.io/v1/index.js");

const MODELS = {
  "keda.sh/v1alpha1/ScaledObject": { model: ScaledObject, dts: "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject.d.ts" },
  "keda.sh/v1alpha1/TriggerAuthentication": {
    model: TriggerAuthentication,
    dts: "@kubernetes-models/keda/keda.sh/v1alpha1/TriggerAuthentication.d.ts",
  },
  "monitoring.coreos.com/v1/ServiceMonitor": {
    model: ServiceMonitor,
    dts: "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor.d.ts",
  },
  "monitoring.coreos.com/v1/PodMonitor": {
    model: PodMonitor,
    dts: "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor.d.ts",
  },
  "monitoring.coreos.com/v1/PrometheusRule": {
    model: PrometheusRule,
    dts: "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule.d.ts",
  },
  "postgresql.cnpg.io/v1/Cluster": { model: Cluster, dts: "@kubernetes-models/cloudnative-pg/postgresql.cnpg.io/v1/Cluster.d.ts" },
};

// --- unknown fields, from the packages' .d.ts interfaces -------------------

const fileCache = new Map();

/** Parses a .d.ts file: its imports, its interfaces (top-level properties only) and its aliases. */
function parseDts(path) {
  if (fileCache.has(path)) return fileCache.get(path);
  const text = readFileSync(path, "utf8");
  const imports = new Map();
  for (const m of text.matchAll(/^import \{ ([^}]+) \} from "([^"]+)";$/gm)) {
    for (const name of m[1].split(",").map((s) => s.trim())) imports.set(name, m[2]);
  }
  const interfaces = new Map();
  for (const m of text.matchAll(/^export interface (\w+)(?: extends ([\w, ]+))? \{\n([\s\S]*?)^\}/gm)) {
    const props = new Map();
    if (m[2] && m[2].split(",").some((s) => s.trim() === "TypeMeta")) {
      props.set("apiVersion", "string");
      props.set("kind", "string");
    }
    for (const line of m[3].split("\n")) {
      const p = line.match(/^ {4}"([^"]+)"\??: (.*?);?$/);
      if (p) props.set(p[1], p[2].endsWith("{") ? "{open}" : p[2]);
    }
    interfaces.set(m[1], props);
  }
  const aliases = new Map();
  for (const m of text.matchAll(/^export type \{ ([^}]+) \};$/gm)) {
    for (const part of m[1].split(",")) {
      const a = part.trim().match(/^(\w+) as (\w+)$/);
      if (a) aliases.set(a[2], a[1]);
    }
  }
  const parsed = { path, imports, interfaces, aliases };
  fileCache.set(path, parsed);
  return parsed;
}

function resolveModule(fromPath, spec) {
  if (spec.startsWith(".")) return resolve(dirname(fromPath), spec.replace(/\.js$/, ".d.ts"));
  const candidate = join(nodeModules, spec.replace(/\.js$/, "") + ".d.ts");
  if (existsSync(candidate)) return candidate;
  const index = join(nodeModules, spec, "index.d.ts");
  return existsSync(index) ? index : null;
}

/** The properties of interface `name` as seen from `file`, or null when unknown. */
function lookup(file, name) {
  if (file.interfaces.has(name)) return file.interfaces.get(name);
  if (file.aliases.has(name) && file.interfaces.has(file.aliases.get(name))) {
    return file.interfaces.get(file.aliases.get(name));
  }
  const spec = file.imports.get(name);
  if (!spec) return null;
  const target = resolveModule(file.path, spec);
  if (!target || !existsSync(target)) return null;
  const other = parseDts(target);
  const local = other.aliases.get(name) || name;
  return other.interfaces.has(local) ? { props: other.interfaces.get(local), file: other } : null;
}

function typeOf(file, type) {
  const t = type.trim();
  const array = t.match(/^Array<(.+)>$/);
  if (array) return { array: typeOf(file, array[1]) };
  if (/^I\w+$/.test(t)) {
    const found = lookup(file, t);
    if (found && found.props) return { props: found.props, file: found.file };
    if (found) return { props: found, file };
  }
  return null; // primitives, literals, unions, maps, open objects: no key check
}

function unknownFields(value, type, path, errors) {
  if (!type || value === null || value === undefined) return;
  if (type.array) {
    if (Array.isArray(value)) value.forEach((v, i) => unknownFields(v, type.array, `${path}[${i}]`, errors));
    return;
  }
  if (typeof value !== "object" || Array.isArray(value)) return;
  for (const [key, child] of Object.entries(value)) {
    const where = path ? `${path}.${key}` : key;
    if (!type.props.has(key)) {
      errors.push(`unknown field ${where}`);
      continue;
    }
    unknownFields(child, typeOf(type.file, type.props.get(key)), where, errors);
  }
}

function checkUnknownFields(doc, dtsRelative) {
  const file = parseDts(join(nodeModules, dtsRelative));
  const root = [...file.interfaces.values()][0];
  const errors = [];
  unknownFields(doc, { props: root, file }, "", errors);
  return errors;
}

// --- RabbitmqCluster: hand-written structural check -----------------------

const QUANTITY = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[KMGTPE]i|[mkMGTPE])?$/;
const RABBIT_SPEC = {
  replicas: "integer",
  image: "string",
  imagePullSecrets: "array",
  service: "object",
  persistence: "object",
  resources: "resources",
  affinity: "object",
  tolerations: "array",
  rabbitmq: "object",
  tls: "object",
  override: "object",
  skipPostDeploySteps: "boolean",
  terminationGracePeriodSeconds: "integer",
  delayStartSeconds: "integer",
  secretBackend: "object",
  autoEnableAllFeatureFlags: "boolean",
};
const RABBIT_CONFIG = {
  additionalPlugins: "array",
  additionalConfig: "string",
  advancedConfig: "string",
  envConfig: "string",
  erlangInetConfig: "string",
};
const RABBIT_PERSISTENCE = { storageClassName: "string", storage: "quantity" };
const RABBIT_SERVICE = { type: "string", annotations: "object", ipFamilyPolicy: "string" };
const RABBIT_OVERRIDE = { statefulSet: "object", service: "object" };

function checkFields(obj, allowed, path, errors) {
  if (obj === undefined) return;
  if (obj === null || typeof obj !== "object" || Array.isArray(obj)) {
    errors.push(`${path} must be an object`);
    return;
  }
  for (const [key, value] of Object.entries(obj)) {
    const kind = allowed[key];
    const where = `${path}.${key}`;
    if (!kind) errors.push(`unknown field ${where}`);
    else if (kind === "integer" && !Number.isInteger(value)) errors.push(`${where} must be an integer`);
    else if (kind === "string" && typeof value !== "string") errors.push(`${where} must be a string`);
    else if (kind === "boolean" && typeof value !== "boolean") errors.push(`${where} must be a boolean`);
    else if (kind === "array" && !Array.isArray(value)) errors.push(`${where} must be an array`);
    else if (kind === "object" && (value === null || typeof value !== "object" || Array.isArray(value)))
      errors.push(`${where} must be an object`);
    else if (kind === "quantity" && !(typeof value === "string" && QUANTITY.test(value)) && !Number.isFinite(value))
      errors.push(`${where} must be a quantity`);
    else if (kind === "resources") checkFields(value, { requests: "quantities", limits: "quantities", claims: "array" }, where, errors);
    else if (kind === "quantities") {
      if (value === null || typeof value !== "object") errors.push(`${where} must be an object`);
      else
        for (const [res, q] of Object.entries(value))
          if (!(typeof q === "string" && QUANTITY.test(q)) && !Number.isFinite(q)) errors.push(`${where}.${res} must be a quantity`);
    }
  }
}

function checkRabbitmqCluster(doc) {
  const errors = [];
  checkFields(doc, { apiVersion: "string", kind: "string", metadata: "object", spec: "object", status: "object" }, "", errors);
  if (!doc.metadata || typeof doc.metadata.name !== "string") errors.push("metadata.name is required");
  const spec = doc.spec || {};
  checkFields(spec, RABBIT_SPEC, "spec", errors);
  if (spec.replicas !== undefined && Number.isInteger(spec.replicas) && spec.replicas < 0) errors.push("spec.replicas must be >= 0");
  checkFields(spec.rabbitmq, RABBIT_CONFIG, "spec.rabbitmq", errors);
  checkFields(spec.persistence, RABBIT_PERSISTENCE, "spec.persistence", errors);
  checkFields(spec.service, RABBIT_SERVICE, "spec.service", errors);
  checkFields(spec.override, RABBIT_OVERRIDE, "spec.override", errors);
  const plugins = spec.rabbitmq && spec.rabbitmq.additionalPlugins;
  if (Array.isArray(plugins))
    plugins.forEach((p, i) => {
      if (typeof p !== "string" || !/^\w+$/.test(p)) errors.push(`spec.rabbitmq.additionalPlugins[${i}] must be a plugin name`);
    });
  const sts = spec.override && spec.override.statefulSet;
  if (sts && sts.spec && sts.spec.template && sts.spec.template.spec) {
    const containers = sts.spec.template.spec.containers;
    if (containers !== undefined && !Array.isArray(containers)) errors.push("spec.override.statefulSet.spec.template.spec.containers must be an array");
    else if (containers)
      containers.forEach((c, i) => {
        if (!c || typeof c.name !== "string") errors.push(`spec.override.statefulSet.spec.template.spec.containers[${i}].name is required`);
      });
  }
  return errors;
}

// --- main -----------------------------------------------------------------

function describe(doc) {
  return `${doc.kind}/${(doc.metadata && doc.metadata.name) || "?"}`;
}

const CORE_GROUPS = new Set([
  "v1", "apps/v1", "batch/v1", "autoscaling/v2", "policy/v1", "networking.k8s.io/v1", "rbac.authorization.k8s.io/v1",
]);

const input = process.argv[2];
if (!input) {
  console.error("usage: node crds.mjs rendered.json");
  process.exit(2);
}
const docs = JSON.parse(readFileSync(input, "utf8"));
let failures = 0;
let checked = 0;
for (const doc of docs) {
  if (!doc || typeof doc !== "object") continue;
  if (CORE_GROUPS.has(doc.apiVersion)) continue;
  const key = `${doc.apiVersion}/${doc.kind}`;
  let errors = [];
  let how;
  if (MODELS[key]) {
    how = "schema + declared fields";
    try {
      new MODELS[key].model(doc).validate();
    } catch (e) {
      errors.push(String(e.message || e));
    }
    errors = errors.concat(checkUnknownFields(doc, MODELS[key].dts));
  } else if (key === "rabbitmq.com/v1beta1/RabbitmqCluster") {
    how = "structural check (no schema package)";
    errors = checkRabbitmqCluster(doc);
  } else {
    how = "none";
    errors.push(`no schema for ${key}: add one to deploy/validate/crds.mjs`);
  }
  checked += 1;
  if (errors.length) {
    failures += 1;
    for (const e of errors) console.log(`ERROR ${describe(doc)} (${key}): ${e}`);
  } else {
    console.log(`ok    ${describe(doc)} (${key}; ${how})`);
  }
}
console.log(`${checked} custom resources checked, ${failures} failed`);
process.exit(failures ? 1 : 0);
