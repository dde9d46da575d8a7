import { Group, Table, Text } from "@mantine/core";
import { IconCheck, IconMinus, IconX } from "@tabler/icons-react";

import { formatNumber, int64 } from "../../components/format";
import { Truncated } from "../../components/Truncated";
import type { MetricCheckJson, MetricsVerificationJson } from "../../gen/mlplane/v1/model_registry_pb";
import { type CheckStatus, checkStatus, checkStatusWords, num } from "./validation";

const numeric = { fontVariantNumeric: "tabular-nums" } as const;

function value(v: number | string | undefined, signed = false): string {
  if (v === undefined) return "—";
  const n = num(v);
  return `${signed && n > 0 ? "+" : ""}${formatNumber(n)}`;
}

// The status is always a word; the icon and colour only repeat it.
const LOOK: Record<CheckStatus, { icon: typeof IconCheck; color: string }> = {
  MATCH: { icon: IconCheck, color: "#066a4c" },
  MISMATCH: { icon: IconX, color: "red.9" },
  NOT_COMPUTED: { icon: IconMinus, color: "gray.8" },
  UNKNOWN: { icon: IconMinus, color: "gray.8" },
};

function StatusCell({ check }: { check: MetricCheckJson }) {
  const status = checkStatus(check);
  const { icon: Icon, color } = LOOK[status];
  return (
    <Group gap={4} wrap="nowrap">
      <Icon size={14} aria-hidden style={{ flexShrink: 0 }} />
      <Text size="sm" fw={600} c={color}>
        {checkStatusWords(status)}
      </Text>
    </Group>
  );
}

function ChecksTable({ checks }: { checks: MetricCheckJson[] }) {
  return (
    <Table.ScrollContainer minWidth={620}>
      <Table verticalSpacing={6} layout="fixed" captionSide="top">
        <Table.Caption ta="left" fw={600} c="dark.7">
          Claimed vs verified metrics
        </Table.Caption>
        <Table.Thead>
          <Table.Tr>
            <Table.Th>Metric</Table.Th>
            <Table.Th w={96} ta="right">
              Claimed
            </Table.Th>
            <Table.Th w={96} ta="right">
              Verified
            </Table.Th>
            <Table.Th w={104} ta="right">
              Difference
            </Table.Th>
            <Table.Th w={96} ta="right">
              Tolerance
            </Table.Th>
            <Table.Th w={130}>Status</Table.Th>
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {checks.map((check, i) => (
            <Table.Tr key={`${check.name ?? ""}-${i}`}>
              <Table.Td>
                <Truncated size="sm" ff="monospace">
                  {check.name || "(unnamed)"}
                </Truncated>
                {check.metric && check.metric !== check.name && (
                  <Text size="xs" c="dimmed">
                    read as {check.metric}
                  </Text>
                )}
                {check.message && (
                  <Text size="xs" c="dimmed" style={{ overflowWrap: "anywhere" }}>
                    {check.message}
                  </Text>
                )}
              </Table.Td>
              <Table.Td ta="right" style={numeric}>
                {value(check.claimed)}
              </Table.Td>
              <Table.Td ta="right" style={numeric}>
                {value(check.verified)}
              </Table.Td>
              <Table.Td ta="right" style={numeric}>
                {value(check.difference, true)}
              </Table.Td>
              <Table.Td ta="right" style={numeric}>
                {check.tolerance === undefined ? "—" : `±${value(check.tolerance)}`}
              </Table.Td>
              <Table.Td>
                <StatusCell check={check} />
              </Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
    </Table.ScrollContainer>
  );
}

/** The claimed metrics reproduced on the evaluation set uploaded with the version. */
export function MetricsVerificationView({ metrics }: { metrics: MetricsVerificationJson }) {
  const checks = metrics.checks ?? [];
  const unknown = metrics.unknownMetrics ?? [];
  const rows = int64(metrics.rows);
  const threshold = num(metrics.threshold);
  const facts = [
    rows ? `${rows.toLocaleString()} rows` : null,
    metrics.labelColumn ? `label column “${metrics.labelColumn}”` : null,
    Number.isFinite(threshold) && threshold > 0 ? `decision threshold ${formatNumber(threshold)}` : null,
  ].filter(Boolean);
  return (
    <>
      {metrics.reason ? (
        <Text size="sm" mb="sm" c="red.9">
          <b>The evaluation could not run</b> (<Text span ff="monospace" inherit>{metrics.reason}</Text>)
          {metrics.message ? `: ${metrics.message}` : "."}
        </Text>
      ) : (
        <Text size="sm" mb="sm">
          {metrics.passed
            ? "Every claimed metric that could be computed matched within its tolerance."
            : "Some claimed metrics do not match what the evaluation set gives."}
          {facts.length ? ` Evaluation set: ${facts.join(", ")}.` : ""}
        </Text>
      )}
      {checks.length > 0 && <ChecksTable checks={checks} />}
      {unknown.length > 0 && (
        <Text size="sm" mt="sm">
          Not checked (no known way to compute them):{" "}
          <Text span ff="monospace" inherit>
            {unknown.join(", ")}
          </Text>
          .
        </Text>
      )}
    </>
  );
}
