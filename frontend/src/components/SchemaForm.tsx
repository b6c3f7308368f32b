// A form generated from a node type's config JSON Schema: a new node type needs no frontend change.
import { useEffect, useId, useMemo, useRef, useState } from "react";
import { api } from "../api";
import { fieldKind, schemaType, templateWordAt, validate, type FieldError } from "../schema";
import type { JsonSchema } from "../types";

type Value = unknown;

// Settings every executable node accepts (flows/nodes/base.py COMMON_PROPERTIES).
const COMMON_SETTINGS = ["label", "timeout_s", "retry", "fallback"];
type Obj = Record<string, unknown>;

let secretNames: Promise<string[] | null> | null = null;
let mayListSecrets = false;
export function allowSecretListing(allowed: boolean) {
  mayListSecrets = allowed;
}
function loadSecretNames(): Promise<string[] | null> {
  // Admins may list secret names; other roles type the name instead.
  if (!mayListSecrets) return Promise.resolve(null);
  secretNames ||= api<{ results: { name: string }[] }>("GET", "secrets/")
    .then((r) => r.results.map((s) => s.name))
    .catch(() => null);
  return secretNames;
}

export interface FormContext {
  suggestions: string[];
  errors: FieldError[];
}

function labelOf(name: string, s: JsonSchema) {
  return s.title || name.replace(/_/g, " ").replace(/^\w/, (c) => c.toUpperCase());
}

export function SchemaForm({
  schema,
  value,
  onChange,
  suggestions,
  idPrefix,
}: {
  schema: JsonSchema;
  value: Obj;
  onChange: (v: Obj, field: string) => void;
  suggestions: string[];
  idPrefix: string;
}) {
  const errors = useMemo(() => validate({ ...schema, type: "object" }, value), [schema, value]);
  const ctx = { suggestions, errors };
  const general = errors.filter((e) => e.path === "");
  return (
    <div className="schema-form">
      {general.map((e, i) => (
        <p key={i} className="field-error" role="alert">
          {e.message}
        </p>
      ))}
      <ObjectFields
        schema={schema}
        value={value}
        path=""
        ctx={ctx}
        idPrefix={idPrefix}
        onChange={(v, field) => onChange(v, field)}
      />
    </div>
  );
}

function ObjectFields({
  schema,
  value,
  path,
  ctx,
  idPrefix,
  onChange,
}: {
  schema: JsonSchema;
  value: Obj;
  path: string;
  ctx: FormContext;
  idPrefix: string;
  onChange: (v: Obj, field: string) => void;
}) {
  const required = new Set(schema.required || []);
  // Required fields first; at the top level the settings every node shares go last, folded.
  const all = Object.entries(schema.properties || {});
  const isCommon = (name: string) => !path && COMMON_SETTINGS.includes(name);
  const props = [...all.filter(([n]) => required.has(n)), ...all.filter(([n]) => !required.has(n) && !isCommon(n))];
  const common = all.filter(([n]) => !required.has(n) && isCommon(n));
  const render = ([name, sub]: [string, JsonSchema]) => {
        const fieldPath = path ? `${path}.${name}` : name;
        return (
          <Field
            key={name}
            name={name}
            schema={sub}
            required={required.has(name)}
            value={value[name]}
            path={fieldPath}
            ctx={ctx}
            idPrefix={idPrefix}
            onChange={(v) => {
              const next = { ...value };
              if (v === undefined) delete next[name];
              else next[name] = v;
              onChange(next, fieldPath);
            }}
          />
        );
  };
  return (
    <>
      {props.map(render)}
      {common.length > 0 && (
        <details className="common-settings" open={common.some(([n]) => value[n] !== undefined)}>
          <summary>Label, timeout, retries, fallback</summary>
          {common.map(render)}
        </details>
      )}
    </>
  );
}

function Field({
  name,
  schema,
  required,
  value,
  path,
  ctx,
  idPrefix,
  onChange,
}: {
  name: string;
  schema: JsonSchema;
  required: boolean;
  value: Value;
  path: string;
  ctx: FormContext;
  idPrefix: string;
  onChange: (v: Value) => void;
}) {
  const id = `${idPrefix}-${path.replace(/[^a-zA-Z0-9_-]/g, "-")}`;
  const kind = fieldKind(schema, value);
  const label = labelOf(name, schema);
  const errors = ctx.errors.filter((e) => e.path === path);
  const describedBy = errors.length ? `${id}-err` : schema.description ? `${id}-help` : undefined;
  const common = { id, "aria-invalid": errors.length ? true : undefined, "aria-describedby": describedBy };
  let input: JSX.Element;

  switch (kind) {
    case "enum":
      input = (
        <select {...common} value={value === undefined ? "" : String(value)} onChange={(e) => {
          const raw = e.target.value;
          if (raw === "") return onChange(undefined);
          const match = schema.enum!.find((x) => String(x) === raw);
          onChange(match);
        }}>
          {!required && <option value="">{schema.default !== undefined ? `(default: ${String(schema.default)})` : "—"}</option>}
          {required && value === undefined && <option value="">Choose…</option>}
          {schema.enum!.map((x) => (
            <option key={String(x)} value={String(x)}>
              {String(x)}
            </option>
          ))}
        </select>
      );
      break;
    case "boolean":
      input = (
        <input {...common} type="checkbox" checked={value === true} onChange={(e) => onChange(e.target.checked)} />
      );
      break;
    case "number":
    case "integer":
      input = (
        <NumberInput common={common} schema={schema} integer={kind === "integer"} value={value} onChange={onChange} />
      );
      break;
    case "template":
    case "expression":
      input = (
        <TemplateInput
          common={common}
          multiline={!!schema["x-multiline"] || kind === "template"}
          value={typeof value === "string" ? value : ""}
          suggestions={ctx.suggestions}
          expression={kind === "expression"}
          onChange={(v) => onChange(v === "" && !required ? undefined : v)}
        />
      );
      break;
    case "secret":
      input = <SecretInput common={common} value={typeof value === "string" ? value : ""} onChange={onChange} />;
      break;
    case "multiline":
      input = (
        <textarea {...common} rows={4} value={typeof value === "string" ? value : ""}
          onChange={(e) => onChange(e.target.value === "" && !required ? undefined : e.target.value)} />
      );
      break;
    case "string":
      input = (
        <input {...common} type="text" value={typeof value === "string" ? value : ""}
          placeholder={schema.default !== undefined ? String(schema.default) : undefined}
          onChange={(e) => onChange(e.target.value === "" && !required ? undefined : e.target.value)} />
      );
      break;
    case "object":
      return (
        <fieldset className="field nested">
          <legend>{label}</legend>
          {schema.description && <p className="help" id={`${id}-help`}>{schema.description}</p>}
          {value === undefined && !required ? (
            <button type="button" className="button small" onClick={() => onChange({})}>
              Set {label.toLowerCase()}
            </button>
          ) : (
            <>
              <ObjectFields schema={schema} value={(value as Obj) || {}} path={path} ctx={ctx} idPrefix={idPrefix}
                onChange={(v) => onChange(v)} />
              {!required && (
                <button type="button" className="button small" onClick={() => onChange(undefined)}>
                  Clear
                </button>
              )}
            </>
          )}
          <Errors id={`${id}-err`} errors={errors} />
        </fieldset>
      );
    case "array":
      return (
        <ArrayField label={label} schema={schema} value={Array.isArray(value) ? value : []} path={path} ctx={ctx}
          idPrefix={idPrefix} errors={errors} id={id} onChange={onChange} />
      );
    case "map":
      return (
        <MapField label={label} schema={schema} value={(value as Obj) || {}} ctx={ctx} id={id}
          onChange={(v) => onChange(Object.keys(v).length || required ? v : undefined)} errors={errors} />
      );
    default:
      input = <JsonInput common={common} value={value} onChange={onChange} />;
  }
  return (
    <div className={`field field-${kind}`}>
      <label htmlFor={id}>
        {label}
        {required && <span className="req" aria-hidden="true"> *</span>}
      </label>
      {input}
      {schema.description && (
        <p className="help" id={`${id}-help`}>
          {schema.description}
        </p>
      )}
      <Errors id={`${id}-err`} errors={errors} />
    </div>
  );
}

function Errors({ id, errors }: { id: string; errors: FieldError[] }) {
  if (!errors.length) return null;
  return (
    <p className="field-error" id={id} role="alert">
      {errors.map((e) => e.message).join("; ")}
    </p>
  );
}

function NumberInput({ common, schema, integer, value, onChange }: {
  common: object; schema: JsonSchema; integer: boolean; value: Value; onChange: (v: Value) => void;
}) {
  const [text, setText] = useState(value === undefined ? "" : String(value));
  useEffect(() => {
    if (String(value ?? "") !== text && Number(text) !== value) setText(value === undefined ? "" : String(value));
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [value]);
  return (
    <input {...common} type="number" inputMode={integer ? "numeric" : "decimal"} value={text}
      min={schema.minimum} max={schema.maximum} step={integer ? 1 : "any"}
      placeholder={schema.default !== undefined ? String(schema.default) : undefined}
      onChange={(e) => {
        setText(e.target.value);
        if (e.target.value === "") return onChange(undefined);
        const n = Number(e.target.value);
        onChange(Number.isFinite(n) ? n : e.target.value);
      }} />
  );
}

function JsonInput({ common, value, onChange }: { common: object; value: Value; onChange: (v: Value) => void }) {
  const [text, setText] = useState(value === undefined ? "" : JSON.stringify(value, null, 2));
  const [bad, setBad] = useState<string | null>(null);
  return (
    <>
      <textarea {...common} className="mono" rows={4} value={text} spellCheck={false}
        onChange={(e) => {
          setText(e.target.value);
          if (!e.target.value.trim()) {
            setBad(null);
            return onChange(undefined);
          }
          try {
            onChange(JSON.parse(e.target.value));
            setBad(null);
          } catch {
            setBad("not valid JSON yet");
          }
        }} />
      {bad && <p className="field-error">{bad}</p>}
    </>
  );
}

function SecretInput({ common, value, onChange }: { common: object; value: string; onChange: (v: Value) => void }) {
  const [names, setNames] = useState<string[] | null | undefined>(undefined);
  useEffect(() => {
    let live = true;
    loadSecretNames().then((n) => live && setNames(n));
    return () => {
      live = false;
    };
  }, []);
  if (names) {
    return (
      <select {...common} value={value} onChange={(e) => onChange(e.target.value || undefined)}>
        <option value="">(none)</option>
        {value && !names.includes(value) && <option value={value}>{value} (missing)</option>}
        {names.map((n) => (
          <option key={n} value={n}>{n}</option>
        ))}
      </select>
    );
  }
  return (
    <input {...common} type="text" value={value} placeholder="secret name, e.g. anthropic_api_key"
      onChange={(e) => onChange(e.target.value || undefined)} />
  );
}

/** A template field: typing inside ``{{ `` offers inputs and upstream nodes' outputs. */
export function TemplateInput({ common, multiline, value, suggestions, expression, onChange }: {
  common: { id: string; [k: string]: unknown };
  multiline: boolean;
  value: string;
  suggestions: string[];
  expression?: boolean;
  onChange: (v: string) => void;
}) {
  const ref = useRef<HTMLTextAreaElement & HTMLInputElement>(null);
  const [open, setOpen] = useState<{ start: number; word: string } | null>(null);
  const [active, setActive] = useState(0);
  const listId = useId();
  const matches = open ? suggestions.filter((s) => s.startsWith(open.word) && s !== open.word).slice(0, 8) : [];

  const refresh = () => {
    const el = ref.current;
    if (!el) return;
    const caret = el.selectionStart ?? el.value.length;
    const at = expression ? { start: caret - (el.value.slice(0, caret).match(/[a-zA-Z0-9_.]*$/)?.[0].length ?? 0), word: el.value.slice(0, caret).match(/[a-zA-Z0-9_.]*$/)?.[0] ?? "" } : templateWordAt(el.value, caret);
    setOpen(at && (at.word.length > 0 || !expression) ? at : null);
    setActive(0);
  };
  const insert = (choice: string) => {
    const el = ref.current;
    if (!el || !open) return;
    const caret = el.selectionStart ?? el.value.length;
    const after = el.value.slice(caret);
    const close = !expression && !after.trimStart().startsWith("}}") ? " }}" : "";
    const next = el.value.slice(0, open.start) + choice + close + after;
    onChange(next);
    setOpen(null);
    requestAnimationFrame(() => {
      const pos = open.start + choice.length + close.length;
      el.focus();
      el.setSelectionRange(pos, pos);
    });
  };
  const props = {
    ...common,
    ref,
    value,
    role: "combobox",
    "aria-autocomplete": "list" as const,
    "aria-expanded": matches.length > 0,
    "aria-controls": listId,
    onChange: (e: { target: { value: string } }) => {
      onChange(e.target.value);
      requestAnimationFrame(refresh);
    },
    onKeyDown: (e: React.KeyboardEvent) => {
      if (!matches.length) return;
      if (e.key === "ArrowDown") {
        e.preventDefault();
        setActive((a) => (a + 1) % matches.length);
      } else if (e.key === "ArrowUp") {
        e.preventDefault();
        setActive((a) => (a - 1 + matches.length) % matches.length);
      } else if (e.key === "Enter" || e.key === "Tab") {
        e.preventDefault();
        insert(matches[active]);
      } else if (e.key === "Escape") {
        e.stopPropagation();
        setOpen(null);
      }
    },
    onBlur: () => setTimeout(() => setOpen(null), 150),
    spellCheck: false,
  };
  return (
    <div className="template-input">
      {multiline ? <textarea {...props} rows={4} className="mono" /> : <input {...props} type="text" className="mono" />}
      {matches.length > 0 && (
        <ul className="autocomplete" id={listId} role="listbox" aria-label="Variables">
          {matches.map((m, i) => (
            <li key={m} role="option" aria-selected={i === active} className={i === active ? "active" : ""}
              onMouseDown={(e) => {
                e.preventDefault();
                insert(m);
              }}>
              {m}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

function ArrayField({ label, schema, value, path, ctx, idPrefix, errors, id, onChange }: {
  label: string; schema: JsonSchema; value: unknown[]; path: string; ctx: FormContext; idPrefix: string;
  errors: FieldError[]; id: string; onChange: (v: Value) => void;
}) {
  const item = schema.items || {};
  const isObj = schemaType(item) === "object";
  const set = (i: number, v: unknown) => onChange(value.map((x, j) => (j === i ? v : x)));
  return (
    <fieldset className="field nested">
      <legend>{label}</legend>
      {schema.description && <p className="help">{schema.description}</p>}
      {value.map((x, i) => (
        <div className="array-item" key={i}>
          {isObj ? (
            <div className="array-obj">
              <ObjectFields schema={item} value={(x as Obj) || {}} path={`${path}[${i}]`} ctx={ctx}
                idPrefix={idPrefix} onChange={(v) => set(i, v)} />
            </div>
          ) : (
            <input type="text" aria-label={`${label} ${i + 1}`} value={typeof x === "string" ? x : ""}
              onChange={(e) => set(i, e.target.value)} />
          )}
          <button type="button" className="button small" aria-label={`Remove ${label} ${i + 1}`}
            onClick={() => onChange(value.filter((_, j) => j !== i))}>
            ✕
          </button>
        </div>
      ))}
      <button type="button" className="button small" id={id}
        onClick={() => onChange([...value, isObj ? {} : ""])}>
        + Add
      </button>
      <Errors id={`${id}-err`} errors={errors} />
    </fieldset>
  );
}

function MapField({ label, schema, value, ctx, id, errors, onChange }: {
  label: string; schema: JsonSchema; value: Obj; ctx: FormContext; id: string; errors: FieldError[];
  onChange: (v: Obj) => void;
}) {
  const entries = Object.entries(value);
  const sub = (schema.additionalProperties as JsonSchema) || {};
  const [newKey, setNewKey] = useState("");
  return (
    <fieldset className="field nested">
      <legend>{label}</legend>
      {schema.description && <p className="help">{schema.description}</p>}
      {entries.map(([k, v]) => (
        <div className="map-row" key={k}>
          <code>{k}</code>
          {sub.format === "template" ? (
            <TemplateInput common={{ id: `${id}-${k}`, "aria-label": `${label} ${k}` }} multiline={false}
              value={typeof v === "string" ? v : JSON.stringify(v)} suggestions={ctx.suggestions}
              onChange={(t) => onChange({ ...value, [k]: t })} />
          ) : (
            <input type="text" aria-label={`${label} ${k}`} value={typeof v === "string" ? v : JSON.stringify(v)}
              onChange={(e) => onChange({ ...value, [k]: e.target.value })} />
          )}
          <button type="button" className="button small" aria-label={`Remove ${k}`}
            onClick={() => {
              const next = { ...value };
              delete next[k];
              onChange(next);
            }}>
            ✕
          </button>
        </div>
      ))}
      <div className="map-row">
        <input type="text" id={id} aria-label={`New ${label} name`} placeholder="name" value={newKey}
          onChange={(e) => setNewKey(e.target.value)} />
        <button type="button" className="button small" disabled={!newKey || newKey in value}
          onClick={() => {
            onChange({ ...value, [newKey]: "" });
            setNewKey("");
          }}>
          + Add
        </button>
      </div>
      <Errors id={`${id}-err`} errors={errors} />
    </fieldset>
  );
}
