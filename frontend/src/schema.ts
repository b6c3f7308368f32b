// Schema-driven forms: which widget a JSON Schema property gets, defaults, inline validation.
// A subset of JSON Schema (what node configs use); the server's validator stays the authority.
import type { JsonSchema } from "./types";

export type FieldKind =
  | "template"
  | "expression"
  | "secret"
  | "multiline"
  | "string"
  | "enum"
  | "number"
  | "integer"
  | "boolean"
  | "array"
  | "object"
  | "map"
  | "json";

export function schemaType(s: JsonSchema): string | undefined {
  if (Array.isArray(s.type)) return s.type.find((t) => t !== "null");
  return s.type as string | undefined;
}

export function fieldKind(s: JsonSchema, value?: unknown): FieldKind {
  if (s.enum) return "enum";
  // A field that takes several types ("a template, or a mapping of templates") follows its value.
  if (Array.isArray(s.type) && value !== undefined && typeof value !== "string") {
    if (value && typeof value === "object" && !Array.isArray(value) && s.additionalProperties && typeof s.additionalProperties === "object")
      return "map";
    return "json";
  }
  const t = schemaType(s);
  if (s.format === "secret-ref") return "secret";
  if (s.format === "template") return "template";
  if (s.format === "expression") return "expression";
  if (t === "string") return s["x-multiline"] ? "multiline" : "string";
  if (t === "number") return "number";
  if (t === "integer") return "integer";
  if (t === "boolean") return "boolean";
  if (t === "array") return s.items && (schemaType(s.items) === "object" || schemaType(s.items) === "string") ? "array" : "json";
  if (t === "object") {
    if (s.properties && Object.keys(s.properties).length) return "object";
    if (s.additionalProperties && typeof s.additionalProperties === "object") return "map";
    return "json";
  }
  return "json";
}

/** A new node's config: the schema's defaults for required fields (and kind-like enums). */
export function defaultConfig(schema: JsonSchema): Record<string, unknown> {
  const config: Record<string, unknown> = {};
  const required = new Set(schema.required || []);
  for (const [name, prop] of Object.entries(schema.properties || {})) {
    if (prop.default !== undefined && (required.has(name) || prop.enum || name === "input_schema" || name === "model"))
      config[name] = structuredClone(prop.default);
    else if (required.has(name) && schemaType(prop) === "string") config[name] = "";
  }
  return config;
}

export interface FieldError {
  path: string;
  message: string;
}

function typeOk(t: string | undefined, v: unknown): boolean {
  switch (t) {
    case "string":
      return typeof v === "string";
    case "number":
      return typeof v === "number" && Number.isFinite(v);
    case "integer":
      return typeof v === "number" && Number.isInteger(v);
    case "boolean":
      return typeof v === "boolean";
    case "array":
      return Array.isArray(v);
    case "object":
      return !!v && typeof v === "object" && !Array.isArray(v);
    default:
      return true;
  }
}

/** Problems of ``value`` against ``schema``, each with a dotted path ("retry.max_attempts"). */
export function validate(schema: JsonSchema, value: unknown, path = ""): FieldError[] {
  const errors: FieldError[] = [];
  const at = (message: string) => errors.push({ path, message });
  if (value === undefined) return errors;
  const t = schemaType(schema);
  if (!typeOk(t, value)) {
    at(`must be ${t === "integer" ? "a whole number" : `a ${t}`}`);
    return errors;
  }
  if (schema.enum && !schema.enum.some((e) => JSON.stringify(e) === JSON.stringify(value)))
    at(`must be one of ${schema.enum.join(", ")}`);
  if (typeof value === "number") {
    if (schema.minimum !== undefined && value < schema.minimum) at(`must be at least ${schema.minimum}`);
    if (schema.maximum !== undefined && value > schema.maximum) at(`must be at most ${schema.maximum}`);
  }
  if (typeof value === "string") {
    if (schema.minLength !== undefined && value.length < schema.minLength)
      at(schema.minLength === 1 ? "is required" : `needs at least ${schema.minLength} characters`);
    if (schema.maxLength !== undefined && value.length > schema.maxLength)
      at(`is longer than ${schema.maxLength} characters`);
    if (schema.pattern && !new RegExp(schema.pattern).test(value)) at(`does not match ${schema.pattern}`);
  }
  if (Array.isArray(value)) {
    if (schema.minItems !== undefined && value.length < schema.minItems) at(`needs at least ${schema.minItems} item(s)`);
    if (schema.items) value.forEach((item, i) => errors.push(...validate(schema.items!, item, `${path}[${i}]`)));
  }
  if (t === "object" && value && typeof value === "object" && !Array.isArray(value)) {
    const obj = value as Record<string, unknown>;
    for (const name of schema.required || []) {
      if (obj[name] === undefined || obj[name] === "")
        errors.push({ path: path ? `${path}.${name}` : name, message: "is required" });
    }
    for (const [name, sub] of Object.entries(schema.properties || {})) {
      if (obj[name] !== undefined && !(obj[name] === "" && (schema.required || []).includes(name)))
        errors.push(...validate(sub, obj[name], path ? `${path}.${name}` : name));
    }
    if (schema.additionalProperties === false && schema.properties) {
      for (const name of Object.keys(obj))
        if (!(name in schema.properties))
          errors.push({ path: path ? `${path}.${name}` : name, message: "unknown setting" });
    }
    for (const rule of schema.allOf || []) {
      // if/then on a const (the model nodes' "openai_compatible needs base_url")
      const cond = rule.if as JsonSchema | undefined;
      const then = rule.then as JsonSchema | undefined;
      if (cond && then && validate({ ...cond, type: "object" }, obj).length === 0) {
        const condMatches = Object.entries(cond.properties || {}).every(
          ([k, s]) => s.const === undefined || obj[k] === s.const,
        );
        if (condMatches) errors.push(...validate({ ...then, type: "object" }, obj, path));
      }
    }
    if (schema.oneOf && schema.oneOf.every((alt) => alt.required?.some((r) => obj[r] === undefined))) {
      const names = schema.oneOf.flatMap((alt) => alt.required || []);
      errors.push({ path, message: `needs one of: ${names.join(", ")}` });
    }
  }
  return errors;
}

/** Template variable suggestions for a node: run inputs, then upstream nodes' outputs. */
export function templateSuggestions(
  inputSchema: JsonSchema | undefined,
  upstream: { id: string; type: string }[],
): string[] {
  const out: string[] = ["input"];
  for (const name of Object.keys(inputSchema?.properties || {})) out.push(`input.${name}`);
  for (const n of upstream) {
    if (n.type === "note") continue;
    out.push(`nodes.${n.id}.output`);
    if (n.type === "llm" || n.type === "agent") out.push(`nodes.${n.id}.output.text`);
    if (n.type === "router") out.push(`nodes.${n.id}.output.class`);
  }
  out.push("tenant.settings");
  return out;
}

/** The partial variable being typed at ``caret`` inside an open ``{{ … `` block, if any. */
export function templateWordAt(text: string, caret: number): { start: number; word: string } | null {
  const before = text.slice(0, caret);
  const open = before.lastIndexOf("{{");
  if (open < 0 || before.lastIndexOf("}}") > open) return null;
  const m = before.slice(open + 2).match(/([a-zA-Z0-9_.]*)$/);
  if (!m) return null;
  return { start: caret - m[1].length, word: m[1] };
}
