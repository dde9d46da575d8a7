import { Anchor, Paper, Table, Text } from "@mantine/core";
import { IconFileExport } from "@tabler/icons-react";
import { Link } from "react-router";

import { useListExportsQuery } from "../../api/api";
import { asApiError } from "../../api/errors";
import { EmptyState } from "../../components/EmptyState";
import { ErrorAlert } from "../../components/ErrorAlert";
import { int64 } from "../../components/format";
import { TableSkeleton } from "../../components/Loading";
import { PageHeader } from "../../components/PageHeader";
import { Pager, usePageTokens } from "../../components/Pager";
import { StatusBadge } from "../../components/StatusBadge";
import { Time } from "../../components/Time";
import { Truncated } from "../../components/Truncated";

/** The caller's own exports, newest first: what a model can cite as its training data. */
export default function ExportsPage() {
  const paging = usePageTokens("exports");
  const query = useListExportsQuery({ pageSize: 50, pageToken: paging.pageToken });
  const exports = query.data?.exports ?? [];
  return (
    <>
      <PageHeader title="My exports" docTitle="My exports">
        <Text c="dimmed" size="sm">
          The history you exported, newest first. Cite an export id as a model&apos;s training data when you upload it.
        </Text>
      </PageHeader>
      {query.error ? (
        <ErrorAlert error={asApiError(query.error)} onRetry={() => void query.refetch()} />
      ) : query.isLoading ? (
        <TableSkeleton />
      ) : exports.length === 0 && paging.pageNumber === 1 ? (
        <EmptyState icon={<IconFileExport size={26} />} title="No exports yet">
          Exports of sensor history (from the SDK, the CLI or a CSV download) appear here with their row count and
          SHA-256.
        </EmptyState>
      ) : (
        <Paper withBorder radius="md">
          <Table.ScrollContainer minWidth={640}>
            <Table highlightOnHover verticalSpacing="sm" layout="fixed">
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Asset</Table.Th>
                  <Table.Th w={170}>Started</Table.Th>
                  <Table.Th w={110} ta="right">
                    Rows
                  </Table.Th>
                  <Table.Th w={80}>Format</Table.Th>
                  <Table.Th w={130}>Status</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {exports.map((e) => (
                  <Table.Tr key={e.exportId}>
                    <Table.Td>
                      <Anchor component={Link} to={`/exports/${e.exportId ?? ""}`} fw={600} truncate="end" display="block" title={e.exportId}>
                        {e.assetId ?? e.exportId}
                      </Anchor>
                      <Truncated size="xs" c="dimmed" ff="monospace">
                        {e.exportId ?? ""}
                      </Truncated>
                    </Table.Td>
                    <Table.Td>
                      <Text size="sm" component="span">
                        <Time value={e.createTime} />
                      </Text>
                    </Table.Td>
                    <Table.Td ta="right" style={{ fontVariantNumeric: "tabular-nums" }}>
                      {new Intl.NumberFormat().format(int64(e.rowCount))}
                    </Table.Td>
                    <Table.Td>{e.format ?? "—"}</Table.Td>
                    <Table.Td>
                      <StatusBadge status={e.status} />
                    </Table.Td>
                  </Table.Tr>
                ))}
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
