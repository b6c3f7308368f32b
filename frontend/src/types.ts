// The flow graph contract (DESIGN.md, "Flow graph contract") and the API's shapes.

export type JsonSchema = {
  type?: string | string[];
  title?: string;
  description?: string;
  format?: string;
  enum?: unknown[];
  const?: unknown;
  default?: unknown;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  pattern?: string;
  items?: JsonSchema;
  properties?: Record<string, JsonSchema>;
  additionalProperties?: boolean | JsonSchema;
  required?: string[];
  oneOf?: JsonSchema[];
  allOf?: JsonSchema[];
  "x-multiline"?: boolean;
  [key: string]: unknown;
};

export interface NodeTypeInfo {
  type: string;
  title: string;
  category: string;
  help: string;
  config_schema: JsonSchema;
  inputs: string[];
  outputs: string[];
  dynamic_outputs: boolean;
  can_fail: boolean;
  executes: boolean;
  icon: string;
  color: string;
}

export interface GraphNode {
  id: string;
  type: string;
  position: { x: number; y: number };
  config: Record<string, unknown>;
  [extra: string]: unknown;
}

export interface GraphEdge {
  id: string;
  source: string;
  target: string;
  sourceHandle?: string;
  targetHandle?: string;
}

export interface GraphDoc {
  schema: number;
  nodes: GraphNode[];
  edges: GraphEdge[];
  [extra: string]: unknown;
}

export interface Problem {
  message: string;
  node?: string;
  edge?: string;
}

export type StepStatus =
  | "pending"
  | "queued"
  | "running"
  | "waiting"
  | "succeeded"
  | "failed"
  | "skipped"
  | "cancelled";

export interface StepInfo {
  node_id: string;
  status: StepStatus;
  attempt?: number;
  attempts?: unknown[];
  inputs?: unknown;
  output?: unknown;
  error?: unknown;
  latency_ms?: number | null;
  tokens_in?: number;
  tokens_out?: number;
  cost_usd?: string;
  model?: string;
  handles?: string[];
}

export interface RunInfo {
  id: number;
  status: string;
  version?: number | null;
  is_test?: boolean;
  inputs?: unknown;
  outputs?: unknown;
  error?: unknown;
  created_at?: string;
  steps?: StepInfo[];
}
