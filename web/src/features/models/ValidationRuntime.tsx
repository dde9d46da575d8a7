import { Group, SimpleGrid, Table, Text } from "@mantine/core";
import { IconAlertTriangle } from "@tabler/icons-react";

import { Bytes } from "../../components/Bytes";
import { formatBytes, formatNumber, int64 } from "../../components/format";
import { Truncated } from "../../components/Truncated";
import type { RuntimeCheckJson, RuntimeOutputJson, SandboxLimitsJson } from "../../gen/mlplane/v1/model_registry_pb";
import { Fact } from "./ModelPage";
import { num } from "./validation";

export function formatMs(value: number): string {
  if (!Number.isFinite(value)) return "—";
  return `${value < 10 ? value.toFixed(2) : value.toFixed(1)} ms`;
}

export function formatSeconds(value: number): string {
  if (!Number.isFinite(value)) return "—";
  return `${value < 10 ? value.toFixed(2) : value.toFixed(1)} s`;
}

const ISOLATION: Record<string, string> = {
  network_namespace: "its own network namespace",
  audit_hook: "an audit hook refusing sockets",
};

function limitsText(limits: SandboxLimitsJson | undefined): string {
  if (!limits) return "—";
  const parts: string[] = [];
  const memory = int64(limits.memoryBytes);
  if (memory) parts.push(`${formatBytes(memory)} memory`);
  const cpu = int64(limits.cpuSeconds);
  if (cpu) parts.push(`${cpu.toLocaleString()} s CPU`);
  const wall = num(limits.wallSeconds);
  if (Number.isFinite(wall) && wall > 0) parts.push(`${formatNumber(wall)} s wall time`);
  if (limits.threads) parts.push(`${limits.threads} thread${limits.threads === 1 ? "" : "s"}`);
  return parts.join(", ") || "—";
}

function OutputsTable({ outputs }: { outputs: RuntimeOutputJson[] }) {
  return (
    <Table.ScrollContainer minWidth={420}>
      <Table verticalSpacing={6} layout="fixed" captionSide="top">
        <Table.Caption ta="left" fw={600} c="dark.7">
          Outputs of the check&apos;s inference
        </Table.Caption>
        <Table.Thead>
          <Table.Tr>
            <Table.Th>Name</Table.Th>
            <Table.Th w={130}>Type</Table.Th>
            <Table.Th w={130}>Shape</Table.Th>
            <Table.Th w={150}>NaN or infinity</Table.Th>
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {outputs.map((output, i) => (
            <Table.Tr key={`${output.name ?? ""}-${i}`}>
              <Table.Td>
                <Truncated size="sm" ff="monospace">
                  {output.name || "(unnamed)"}
                </Truncated>
              </Table.Td>
              <Table.Td>
                <Truncated size="sm" ff="monospace">
                  {output.type || "—"}
                </Truncated>
              </Table.Td>
              <Table.Td>
                <Truncated size="sm" ff="monospace">
                  {output.shape?.length ? `[${output.shape.join(", ")}]` : "not a tensor"}
                </Truncated>
              </Table.Td>
              <Table.Td>
                {output.nonFinite ? (
                  <Group gap={4} wrap="nowrap">
                    <IconAlertTriangle size={14} aria-hidden color="var(--mantine-color-orange-9)" />
                    <Text size="sm" fw={600}>
                      Yes: non-finite
                    </Text>
                  </Group>
                ) : (
                  <Text size="sm">No</Text>
                )}
              </Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
    </Table.ScrollContainer>
  );
}

/** The model loaded and run in ONNX Runtime in a sandboxed child process. */
export function RuntimeCheckView({ runtime }: { runtime: RuntimeCheckJson }) {
  const batch = runtime.batchSize ?? 0;
  const outputs = runtime.outputs ?? [];
  const isolation = (runtime.networkIsolation ?? []).map((way) => ISOLATION[way] ?? way);
  return (
    <>
      {runtime.passed ? (
        <Text size="sm" mb="sm">
          The model loaded and ran.
        </Text>
      ) : (
        <Text size="sm" mb="sm" c="red.9">
          <b>The model did not load or run</b>
          {runtime.reason ? (
            <>
              {" "}
              (<Text span ff="monospace" inherit>{runtime.reason}</Text>)
            </>
          ) : null}
          {runtime.message ? `: ${runtime.message}` : "."}
        </Text>
      )}
      <SimpleGrid cols={{ base: 2, md: 4 }} spacing="md" verticalSpacing="md">
        <Fact label="ONNX Runtime">{runtime.onnxruntimeVersion || "—"}</Fact>
        <Fact label="Load time">{formatSeconds(num(runtime.loadSeconds))}</Fact>
        <Fact label={batch ? `Latency per batch of ${batch.toLocaleString()}` : "Latency per batch"}>
          P50 {formatMs(num(runtime.latencyP50Ms))} · P95 {formatMs(num(runtime.latencyP95Ms))}
          {runtime.timedRuns ? (
            <Text span size="xs" c="dimmed" display="block">
              over {runtime.timedRuns.toLocaleString()} timed run{runtime.timedRuns === 1 ? "" : "s"}
            </Text>
          ) : null}
        </Fact>
        <Fact label="Peak memory">{runtime.peakMemoryBytes ? <Bytes value={int64(runtime.peakMemoryBytes)} /> : "—"}</Fact>
        <Fact label="Limits">{limitsText(runtime.limits)}</Fact>
        <Fact label="Network">{isolation.length ? `Cut off by ${isolation.join(" and ")}` : "—"}</Fact>
      </SimpleGrid>
      {runtime.nonFiniteOutput && (
        <Group gap={6} wrap="nowrap" mt="sm" align="flex-start">
          <IconAlertTriangle size={16} aria-hidden color="var(--mantine-color-orange-9)" style={{ flexShrink: 0, marginTop: 2 }} />
          <Text size="sm">
            <b>An output held NaN or infinity</b> on the synthetic inputs: a flag for the approver, not a failure.
          </Text>
        </Group>
      )}
      {outputs.length > 0 && (
        <div style={{ marginTop: "var(--mantine-spacing-sm)" }}>
          <OutputsTable outputs={outputs} />
        </div>
      )}
    </>
  );
}
