import { Badge } from "@mantine/core";

import { statusWords } from "../api/errors";

// Light badges with dark text of the same hue (shade 9; teal one darker, #066a4c), which keeps a contrast ratio
// above 4.5:1 on the light background; amber takes near-black text.
const STYLE: Record<string, { color: string; text: string }> = {
  PENDING_APPROVAL: { color: "yellow", text: "dark.8" },
  IN_REVIEW: { color: "blue", text: "blue.9" },
  APPROVED: { color: "teal", text: "#066a4c" },
  REJECTED: { color: "red", text: "red.9" },
  ARCHIVED: { color: "gray", text: "gray.8" },
  OPEN: { color: "blue", text: "blue.9" },
  CANCELLED: { color: "gray", text: "gray.8" },
  RUNNING: { color: "blue", text: "blue.9" },
  COMPLETED: { color: "teal", text: "#066a4c" },
  FAILED: { color: "red", text: "red.9" },
  // Validation reports (ValidationReport_StateJson; RUNNING and FAILED as above).
  PENDING: { color: "yellow", text: "dark.8" },
  PASSED: { color: "teal", text: "#066a4c" },
};

export function StatusBadge({
  status,
  size = "md",
}: {
  /** ModelVersion_StatusJson, Approval_StateJson, Export_StatusJson or ValidationReport_StateJson. */
  status: string | undefined;
  size?: "sm" | "md" | "lg";
}) {
  const value = status && !status.endsWith("UNSPECIFIED") ? status : "UNKNOWN";
  const style = STYLE[value] ?? { color: "gray", text: "gray.8" };
  return (
    <Badge variant="light" color={style.color} c={style.text} size={size} radius="sm" tt="none" style={{ flexShrink: 0 }}>
      {value === "UNKNOWN" ? "Unknown" : statusWords(value)}
    </Badge>
  );
}

/**
 * The same badge in one plain element, for long lists (a Mantine Badge is a few components;
 * a page of 1,000 rows feels it).
 */
export function StatusPill({ status }: { status: string | undefined }) {
  const value = status && !status.endsWith("UNSPECIFIED") ? status : "UNKNOWN";
  const style = STYLE[value] ?? { color: "gray", text: "gray.8" };
  return (
    <span
      style={{
        display: "inline-flex",
        alignItems: "center",
        height: "calc(1.25rem * var(--mantine-scale))",
        padding: "0 calc(0.625rem * var(--mantine-scale))",
        borderRadius: "var(--mantine-radius-sm)",
        fontSize: "calc(0.6875rem * var(--mantine-scale))",
        fontWeight: 700,
        letterSpacing: "calc(0.015625rem * var(--mantine-scale))",
        whiteSpace: "nowrap",
        background: `var(--mantine-color-${style.color}-light)`,
        color: `var(--mantine-color-${style.text.replace(".", "-")})`,
      }}
    >
      {value === "UNKNOWN" ? "Unknown" : statusWords(value)}
    </span>
  );
}
