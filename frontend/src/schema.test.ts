import { describe, expect, it } from "vitest";
import { defaultConfig, fieldKind, templateSuggestions, templateWordAt, validate } from "./schema";
import type { JsonSchema } from "./types";

const LLM: JsonSchema = {
  type: "object",
  required: ["prompt"],
  additionalProperties: false,
  properties: {
    provider: { type: "string", enum: ["anthropic", "openai_compatible", "scripted"], default: "anthropic" },
    prompt: { type: "string", format: "template", "x-multiline": true, minLength: 1 },
    system: { type: "string", format: "template", "x-multiline": true },
    max_tokens: { type: "integer", minimum: 1, maximum: 64000, default: 1024 },
    temperature: { type: "number", minimum: 0, maximum: 1 },
    api_key_secret: { type: "string", format: "secret-ref" },
    base_url: { type: "string" },
    note: { type: "string", "x-multiline": true },
    stream: { type: "boolean" },
    retry: { type: "object", properties: { max_attempts: { type: "integer", minimum: 1, maximum: 10 } } },
    classes: { type: "array", minItems: 1, items: { type: "object", properties: { id: { type: "string", pattern: "^[a-z]+$" } } } },
    mapping: { type: "object", additionalProperties: { format: "template" } },
    output_schema: { type: "object" },
  },
  allOf: [{ if: { properties: { provider: { const: "openai_compatible" } }, required: ["provider"] }, then: { required: ["base_url"] } }],
};

describe("schema forms", () => {
  it("picks a widget per property", () => {
    const kinds = Object.fromEntries(Object.entries(LLM.properties!).map(([k, v]) => [k, fieldKind(v)]));
    expect(kinds).toEqual({
      provider: "enum", prompt: "template", system: "template", max_tokens: "integer", temperature: "number",
      api_key_secret: "secret", base_url: "string", note: "multiline", stream: "boolean", retry: "object",
      classes: "array", mapping: "map", output_schema: "json",
    });
  });

  it("fills required fields and enum defaults in a new node", () => {
    expect(defaultConfig(LLM)).toEqual({ provider: "anthropic", prompt: "" });
  });

  it("validates inline with messages naming the field", () => {
    const errors = validate(LLM, {
      provider: "openai_compatible", prompt: "", max_tokens: 0, temperature: 3, retry: { max_attempts: 1.5 },
      classes: [{ id: "Bad" }], bogus: 1,
    });
    const byPath = Object.fromEntries(errors.map((e) => [e.path, e.message]));
    expect(byPath).toMatchObject({
      prompt: "is required",
      max_tokens: "must be at least 1",
      temperature: "must be at most 1",
      "retry.max_attempts": "must be a whole number",
      "classes[0].id": "does not match ^[a-z]+$",
      bogus: "unknown setting",
      base_url: "is required",
    });
    expect(validate(LLM, { provider: "scripted", prompt: "hi" })).toEqual([]);
  });

  it("suggests run inputs and upstream outputs only", () => {
    const list = templateSuggestions({ properties: { ticket: {}, lang: {} } }, [{ id: "classify", type: "router" }, { id: "draft", type: "llm" }]);
    expect(list).toContain("input.ticket");
    expect(list).toContain("nodes.draft.output.text");
    expect(list).toContain("nodes.classify.output.class");
    expect(list.some((s) => s.includes("nodes.result"))).toBe(false);
  });

  it("finds the variable being typed inside {{ }}", () => {
    expect(templateWordAt("Hello {{ inp", 12)).toEqual({ start: 9, word: "inp" });
    expect(templateWordAt("Hello {{ input.x }} and", 23)).toBeNull();
    expect(templateWordAt("{{", 2)).toEqual({ start: 2, word: "" });
  });
});
