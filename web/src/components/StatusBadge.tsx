import { Badge } from "@mantine/core";

import { statusWords } from "../api/errors";

// Light badges with dark text of the same hue (shade 9), which keeps a contrast ratio
// above 4.5:1 on the light background; amber takes near-black text.
const STYLE: Record<string, { color: string; text: string }> = {
  PENDING_APPROVAL: { color: "yellow", text: "dark.8" },
  IN_REVIEW: { color: "blue", text: "blue.9" },
  APPROVED: { color: "teal", text: "teal.9" },
  REJECTED: { color: "red", text: "red.9" },
  ARCHIVED: { color: "gray", text: "gray.8" },
  OPEN: { color: "blue", text: "blue.9" },
  CANCELLED: { color: "gray", text: "gray.8" },
  RUNNING: { color: "blue", text: "blue.9" },
  COMPLETED: { color: "teal", text: "teal.9" },
  FAILED: { color: "red", text: "red.9" },
};

export function StatusBadge({
  status,
  size = "md",
}: {
  /** ModelVersion_StatusJson, Approval_StateJson or Export_StatusJson. */
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
