// The contract's field rules (buf.validate annotations in protos/, with the predefined rules
// of field_rules.proto), checked in the browser by @bufbuild/protovalidate from the same
// descriptors the server reads, so the form and the server can never disagree. Messages
// read exactly as the server writes them: "<field> <rule's message>", "<field> key …", or
// "<field> is required", with fields named as in REST JSON (`labels["team"]`).
//
// This module (protovalidate, its CEL and RE2 engines and the descriptors) is loaded only by
// the pages with forms.
import { create, createRegistry, type DescMessage, type MessageInitShape } from "@bufbuild/protobuf";
import type { Path } from "@bufbuild/protobuf/reflect";
import { createValidator, type Violation } from "@bufbuild/protovalidate";

import { file_mlplane_v1_field_rules } from "../gen/mlplane/v1/field_rules_pb";

const KEY_ECHO_CHARS = 64;

const validator = createValidator({ registry: createRegistry(file_mlplane_v1_field_rules) });

export interface FieldMessage {
  /** REST JSON path: `name`, `labels["team"]`, `trainingExportIds[0]`. */
  field: string;
  /** The violation is about a map key, not its value. */
  forKey: boolean;
  ruleId: string;
  message: string;
}

/** A protovalidate path in REST JSON names, as the server spells it. */
export function jsonPath(path: Path): string {
  const parts: string[] = [];
  for (const element of path) {
    switch (element.kind) {
      case "field":
        parts.push(element.jsonName);
        break;
      case "oneof":
        parts.push(element.name);
        break;
      case "extension":
        parts.push(`[${element.typeName}]`);
        break;
      case "list_sub":
        parts[parts.length - 1] = `${parts.at(-1) ?? ""}[${element.index}]`;
        break;
      case "map_sub": {
        const key = typeof element.key === "string" ? JSON.stringify(element.key.slice(0, KEY_ECHO_CHARS)) : String(element.key);
        parts[parts.length - 1] = `${parts.at(-1) ?? ""}[${key}]`;
        break;
      }
    }
  }
  return parts.join(".");
}

export function describeViolation(violation: Violation): FieldMessage {
  const field = jsonPath(violation.field);
  const ruleId = violation.ruleId || "invalid";
  const subject = violation.forKey ? `${field} key` : field;
  const message = ruleId === "required" ? `${field} is required` : `${subject} ${violation.message}`.trim();
  return { field, forKey: violation.forKey, ruleId, message };
}

/** Every rule the message breaks, described as the server would describe it. */
export function checkMessage<Desc extends DescMessage>(schema: Desc, init: MessageInitShape<Desc>): FieldMessage[] {
  const result = validator.validate(schema, create(schema, init));
  if (result.kind === "valid") return [];
  if (result.kind === "error") throw result.error;
  return result.violations.map(describeViolation);
}

/** The first message for each field path. */
export function byField(messages: readonly FieldMessage[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of messages) out[m.field] ??= m.message;
  return out;
}
