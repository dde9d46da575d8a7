import { Anchor, Button, Group, Paper, Stack, Table, Text } from "@mantine/core";
import { IconChartLine, IconFileExport } from "@tabler/icons-react";
import { Link } from "react-router";

import { useListExportsQuery } from "../../api/api";
import { asApiError } from "../../api/errors";
import { CopyValue } from "../../components/CopyValue";
import { EmptyState } from "../../components/EmptyState";
import { ErrorAlert } from "../../components/ErrorAlert";
import { int64 } from "../../components/format";
import { TableSkeleton } from "../../components/Loading";
import { PageHeader } from "../../components/PageHeader";
import { Pager, usePageTokens } from "../../components/Pager";
import { StatusBadge } from "../../components/StatusBadge";
import { Time } from "../../components/Time";
import type { ExportJson } from "../../gen/mlplane/v1/query_service_pb";
import { parseDuration, resolutionAdjective } from "./resolution";

const PAGE_SIZE = 50;

/** "raw samples" or "1-hour buckets". */
export function granularityWords(e: ExportJson): string {
  const seconds = parseDuration(e.resolution);
  return seconds ? `${resolutionAdjective(seconds)} buckets` : "raw samples";
}

export function formatWords(format: string | undefined): string {
  return format && format !== "FORMAT_UNSPECIFIED" ? format : "ROWS";
}

/** The caller's own exports, newest first: what a model can cite as its training data. */
export default function ExportsPage() {
  const paging = usePageTokens("exports");
  const query = useListExportsQuery({ pageSize: PAGE_SIZE, pageToken: paging.pageToken });
  const exports = query.data?.exports ?? [];
  return (
    <>
      <PageHeader title="My exports" docTitle="My exports">
        <Text c="dimmed" size="sm">
          The history you exported, newest first: from the charts, CSV downloads, the SDK or the CLI. Copy an export
          id into &ldquo;Training exports&rdquo; when you upload the model trained on it.
        </Text>
      </PageHeader>
      {query.error ? (
        <ErrorAlert error={asApiError(query.error)} onRetry={() => void query.refetch()} />
      ) : query.isLoading ? (
        <TableSkeleton />
      ) : exports.length === 0 && paging.pageNumber === 1 ? (
        <EmptyState
          icon={<IconFileExport size={26} />}
          title="No exports yet"
          action={
            <Button component={Link} to="/data" variant="light" leftSection={<IconChartLine size={16} aria-hidden />}>
              Browse the data
            </Button>
          }
        >
          Exports of sensor history (a chart, a CSV download, the SDK or the CLI) appear here with their row count and
          SHA-256.
        </EmptyState>
      ) : (
        <Paper withBorder radius="md">
          <Table.ScrollContainer minWidth={720}>
            <Table highlightOnHover verticalSpacing="sm" layout="fixed" aria-busy={query.isFetching}>
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Export</Table.Th>
                  <Table.Th w={200}>Range</Table.Th>
                  <Table.Th w={112}>Status</Table.Th>
                  <Table.Th w={90} ta="right">
                    Rows
                  </Table.Th>
                  <Table.Th w={180}>Created</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {exports.map((e) => {
                  const id = e.exportId ?? "";
                  return (
                    <Table.Tr key={id}>
                      <Table.Td>
                        <Stack gap={2} style={{ minWidth: 0 }}>
                          <Anchor component={Link} to={`/exports/${id}`} fw={600} truncate="end" display="block" title={e.assetId}>
                            {e.assetId ?? id}
                          </Anchor>
                          <Group gap={4} wrap="nowrap" style={{ minWidth: 0 }}>
                            <Text size="xs" c="dimmed" style={{ flexShrink: 0 }}>
                              ID
                            </Text>
                            <CopyValue value={id} label={`export id of ${e.assetId ?? "this export"}`} size="xs" />
                          </Group>
                          {e.sha256 && (
                            <Group gap={4} wrap="nowrap" style={{ minWidth: 0 }}>
                              <Text size="xs" c="dimmed" style={{ flexShrink: 0 }}>
                                SHA-256
                              </Text>
                              <CopyValue value={e.sha256} label="SHA-256" size="xs" />
                            </Group>
                          )}
                        </Stack>
                      </Table.Td>
                      <Table.Td>
                        <Text size="sm" component="div">
                          <Time value={e.startTime} />
                        </Text>
                        <Text size="sm" component="div">
                          – <Time value={e.endTime} />
                        </Text>
                        <Text size="xs" c="dimmed" truncate="end" title={(e.tags ?? []).join(", ") || "all tags"}>
                          {granularityWords(e)} · {formatWords(e.format)}
                        </Text>
                      </Table.Td>
                      <Table.Td>
                        <StatusBadge status={e.status} size="sm" />
                      </Table.Td>
                      <Table.Td ta="right" style={{ fontVariantNumeric: "tabular-nums" }}>
                        {e.status === "RUNNING" ? "—" : int64(e.rowCount).toLocaleString()}
                      </Table.Td>
                      <Table.Td>
                        <Text size="sm" component="span">
                          <Time value={e.createTime} />
                        </Text>
                      </Table.Td>
                    </Table.Tr>
                  );
                })}
              </Table.Tbody>
            </Table>
          </Table.ScrollContainer>
        </Paper>
      )}
      <Pager
        label="Exports"
        pageNumber={paging.pageNumber}
        nextPageToken={query.data?.nextPageToken}
        onNext={paging.next}
        onPrevious={paging.previous}
        busy={query.isFetching}
      />
    </>
  );
}
