import { Anchor, Badge, Group, Paper, ScrollArea, Stack, Table, Text, Timeline, Title } from "@mantine/core";
import { IconArrowRight } from "@tabler/icons-react";
import type { ReactNode } from "react";
import { Link } from "react-router";

import { useListAuditEntriesQuery } from "../../api/api";
import { asApiError, statusWords } from "../../api/errors";
import { ErrorAlert } from "../../components/ErrorAlert";
import { formatNumber } from "../../components/format";
import { TableSkeleton } from "../../components/Loading";
import { StatusBadge } from "../../components/StatusBadge";
import { Time } from "../../components/Time";
import { Truncated } from "../../components/Truncated";
import type { ModelVersionJson, TensorSpecJson } from "../../gen/mlplane/v1/model_registry_pb";
import { formatShape } from "./signature";

export function Section({ title, children, id }: { title: string; children: ReactNode; id?: string }) {
  const headingId = id ?? `section-${title.toLowerCase().replace(/\W+/g, "-")}`;
  return (
    <Paper withBorder radius="md" p="md" component="section" aria-labelledby={headingId} style={{ minWidth: 0 }}>
      <Title order={2} size="h4" mb="sm" id={headingId}>
        {title}
      </Title>
      {children}
    </Paper>
  );
}

/** Metrics as proto JSON writes doubles: numbers, or "NaN" / "Infinity" as strings. */
type MetricsJson = ModelVersionJson["metrics"];

function metricValue(metrics: MetricsJson, name: string): number | undefined {
  const value = metrics?.[name];
  return value === undefined ? undefined : Number(value);
}

export function MetricsTable({
  metrics,
  compareTo,
  compareLabel,
}: {
  metrics: MetricsJson;
  compareTo?: MetricsJson;
  compareLabel?: string;
}) {
  const names = Array.from(new Set([...Object.keys(metrics ?? {}), ...Object.keys(compareTo ?? {})])).sort();
  if (names.length === 0) return <Text size="sm" c="dimmed">No metrics were given at upload.</Text>;
  return (
    <Table.ScrollContainer minWidth={compareTo ? 420 : 260}>
      <Table verticalSpacing={6} layout="fixed">
        <Table.Thead>
          <Table.Tr>
            <Table.Th>Metric</Table.Th>
            <Table.Th w={compareTo ? 104 : 130} ta="right">
              {compareTo ? "This version" : "Value"}
            </Table.Th>
            {compareTo && (
              <>
                <Table.Th w={112} ta="right">
                  {compareLabel ?? "Approved"}
                </Table.Th>
                <Table.Th w={84} ta="right">
                  Change
                </Table.Th>
              </>
            )}
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {names.map((name) => {
            const value = metricValue(metrics, name);
            const other = metricValue(compareTo, name);
            const delta = value !== undefined && other !== undefined ? value - other : undefined;
            return (
              <Table.Tr key={name}>
                <Table.Td>
                  <Truncated size="sm" ff="monospace">
                    {name}
                  </Truncated>
                </Table.Td>
                <Table.Td ta="right" style={{ fontVariantNumeric: "tabular-nums" }} title={value === undefined ? undefined : String(value)}>
                  {value === undefined ? "—" : formatNumber(value)}
                </Table.Td>
                {compareTo && (
                  <>
                    <Table.Td ta="right" style={{ fontVariantNumeric: "tabular-nums" }} title={other === undefined ? undefined : String(other)}>
                      {other === undefined ? "—" : formatNumber(other)}
                    </Table.Td>
                    <Table.Td ta="right" style={{ fontVariantNumeric: "tabular-nums" }}>
                      {delta === undefined ? "—" : `${delta > 0 ? "+" : ""}${formatNumber(delta)}`}
                    </Table.Td>
                  </>
                )}
              </Table.Tr>
            );
          })}
        </Table.Tbody>
      </Table>
    </Table.ScrollContainer>
  );
}

export function Labels({ labels }: { labels: Record<string, string> | undefined }) {
  const entries = Object.entries(labels ?? {});
  if (entries.length === 0) return <Text size="sm" c="dimmed">No labels.</Text>;
  return (
    <Group gap={6}>
      {entries.map(([key, value]) => (
        <Badge key={key} variant="outline" color="gray" c="dark.7" tt="none" radius="sm" maw="100%" title={`${key}=${value}`}>
          {key}={value}
        </Badge>
      ))}
    </Group>
  );
}

export function Lineage({ exportIds }: { exportIds: string[] | undefined }) {
  if (!exportIds || exportIds.length === 0) {
    return <Text size="sm" c="dimmed">No training exports were cited at upload.</Text>;
  }
  return (
    <Stack gap={4}>
      {exportIds.map((id) => (
        <Anchor key={id} component={Link} to={`/exports/${id}`} size="sm" ff="monospace" truncate="end" title={`Export ${id}`}>
          {id}
        </Anchor>
      ))}
    </Stack>
  );
}

function TensorTable({ caption, tensors }: { caption: string; tensors: TensorSpecJson[] | undefined }) {
  return (
    <Table.ScrollContainer minWidth={360}>
      <Table verticalSpacing={6} layout="fixed" captionSide="top">
        <Table.Caption ta="left" fw={600} c="dark.7">
          {caption}
        </Table.Caption>
        <Table.Thead>
          <Table.Tr>
            <Table.Th>Name</Table.Th>
            <Table.Th w={120}>Type</Table.Th>
            <Table.Th w={170}>Shape</Table.Th>
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {(tensors ?? []).length === 0 ? (
            <Table.Tr>
              <Table.Td colSpan={3}>
                <Text size="sm" c="dimmed">
                  None
                </Text>
              </Table.Td>
            </Table.Tr>
          ) : (
            (tensors ?? []).map((t, i) => (
              <Table.Tr key={`${t.name ?? ""}-${i}`}>
                <Table.Td>
                  <Truncated size="sm" ff="monospace">
                    {t.name || "(unnamed)"}
                  </Truncated>
                </Table.Td>
                <Table.Td>
                  <Text size="sm" ff="monospace">
                    {t.elementType || "—"}
                  </Text>
                </Table.Td>
                <Table.Td>
                  <Truncated size="sm" ff="monospace">
                    {formatShape(t.shape)}
                  </Truncated>
                </Table.Td>
              </Table.Tr>
            ))
          )}
        </Table.Tbody>
      </Table>
    </Table.ScrollContainer>
  );
}

export function SignatureTables({ version }: { version: ModelVersionJson }) {
  return (
    <Stack gap="md">
      <TensorTable caption="Inputs" tensors={version.signature?.inputs} />
      <TensorTable caption="Outputs" tensors={version.signature?.outputs} />
    </Stack>
  );
}

export function StatusHistory({ version }: { version: ModelVersionJson }) {
  const history = version.statusHistory ?? [];
  if (history.length === 0) return <Text size="sm" c="dimmed">No status changes recorded.</Text>;
  return (
    <Timeline active={history.length - 1} bulletSize={14} lineWidth={2}>
      {history.map((change, i) => (
        <Timeline.Item
          key={`${change.changeTime ?? ""}-${i}`}
          title={
            <Group gap={6} wrap="wrap">
              {change.fromStatus && change.fromStatus !== "STATUS_UNSPECIFIED" ? (
                <>
                  <StatusBadge status={change.fromStatus} size="sm" />
                  <IconArrowRight size={14} aria-label="to" />
                </>
              ) : (
                <Text size="sm" c="dimmed">
                  Uploaded as
                </Text>
              )}
              <StatusBadge status={change.toStatus} size="sm" />
            </Group>
          }
        >
          <Text size="sm" c="dimmed" component="div">
            by <b>{change.actor || "—"}</b> · <Time value={change.changeTime} />
          </Text>
          {change.comment && (
            <Text size="sm" mt={4} style={{ whiteSpace: "pre-line", overflowWrap: "anywhere" }}>
              “{change.comment}”
            </Text>
          )}
        </Timeline.Item>
      ))}
    </Timeline>
  );
}

/** The version's audit trail; hidden while the server has no such endpoint (404/501). */
export function AuditEntries({ modelId, version }: { modelId: string; version: string }) {
  const query = useListAuditEntriesQuery({ modelId, version, pageSize: 100 });
  if (query.error) {
    const error = asApiError(query.error);
    if (error.httpStatus === 404 && error.reason !== "MODEL_NOT_FOUND" && error.reason !== "VERSION_NOT_FOUND") return null;
    if (error.httpStatus === 501) return null;
    return (
      <Section title="Audit trail">
        <ErrorAlert error={error} onRetry={() => void query.refetch()} />
      </Section>
    );
  }
  const entries = query.data?.auditEntries ?? [];
  return (
    <Section title="Audit trail">
      {query.isLoading ? (
        <TableSkeleton rows={3} />
      ) : entries.length === 0 ? (
        <Text size="sm" c="dimmed">
          No audit entries.
        </Text>
      ) : (
        <ScrollArea.Autosize mah={420} type="auto">
          <Table.ScrollContainer minWidth={560}>
            <Table verticalSpacing={6} layout="fixed" stickyHeader>
              <Table.Thead>
                <Table.Tr>
                  <Table.Th w={170}>When</Table.Th>
                  <Table.Th w={120}>Who</Table.Th>
                  <Table.Th w={150}>Action</Table.Th>
                  <Table.Th w={150}>Outcome</Table.Th>
                  <Table.Th>Detail</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {entries.map((entry, i) => (
                  <Table.Tr key={`${entry.time ?? ""}-${i}`}>
                    <Table.Td>
                      <Text size="sm" component="span">
                        <Time value={entry.time} withSeconds />
                      </Text>
                    </Table.Td>
                    <Table.Td>
                      <Truncated size="sm">{entry.actor ?? "—"}</Truncated>
                    </Table.Td>
                    <Table.Td>
                      <Truncated size="sm" ff="monospace">
                        {entry.action ?? "—"}
                      </Truncated>
                    </Table.Td>
                    <Table.Td>
                      <Truncated size="sm" title={entry.outcome}>
                        {entry.outcome && /^[A-Z_]+$/.test(entry.outcome) ? statusWords(entry.outcome) : (entry.outcome ?? "—")}
                      </Truncated>
                    </Table.Td>
                    <Table.Td>
                      <Truncated size="xs" ff="monospace" c="dimmed">
                        {entry.detail ?? ""}
                      </Truncated>
                    </Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          </Table.ScrollContainer>
        </ScrollArea.Autosize>
      )}
    </Section>
  );
}
