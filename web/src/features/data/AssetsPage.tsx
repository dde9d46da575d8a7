import { Anchor, Badge, Group, Paper, Table, Text, Tooltip } from "@mantine/core";
import { IconDatabase } from "@tabler/icons-react";
import { Link } from "react-router";

import { useListAssetsQuery } from "../../api/api";
import { asApiError } from "../../api/errors";
import { EmptyState } from "../../components/EmptyState";
import { ErrorAlert } from "../../components/ErrorAlert";
import { TableSkeleton } from "../../components/Loading";
import { PageHeader } from "../../components/PageHeader";
import { Pager, usePageTokens } from "../../components/Pager";
import { Time } from "../../components/Time";
import { Truncated } from "../../components/Truncated";
import type { TagJson } from "../../gen/mlplane/v1/query_service_pb";

const PAGE_SIZE = 50;
/** Tags shown in a row; the rest are counted, and listed on hover. */
const TAGS_SHOWN = 6;

/** "flow (m3/h): Volumetric flow at the discharge" */
export function tagTitle(tag: TagJson): string {
  return `${tag.name ?? ""}${tag.unit ? ` (${tag.unit})` : ""}${tag.description ? `: ${tag.description}` : ""}`;
}

function Tags({ tags }: { tags: TagJson[] }) {
  if (tags.length === 0) {
    return (
      <Text size="sm" c="dimmed">
        No tags
      </Text>
    );
  }
  // "+1 more" would take the room of the one tag it hides.
  const cut = tags.length > TAGS_SHOWN + 1 ? TAGS_SHOWN : tags.length;
  const shown = tags.slice(0, cut);
  const rest = tags.slice(cut);
  return (
    <Group gap={4} wrap="wrap" style={{ minWidth: 0 }}>
      {shown.map((tag) => (
        <Badge
          key={tag.name}
          variant="light"
          color="gray"
          c="dark.6"
          tt="none"
          radius="sm"
          title={tagTitle(tag)}
          maw="100%"
          styles={{ label: { overflow: "hidden", textOverflow: "ellipsis" } }}
        >
          {tag.name}
          {tag.unit ? ` · ${tag.unit}` : ""}
        </Badge>
      ))}
      {rest.length > 0 && (
        <Tooltip label={rest.map((t) => t.name).join(", ")} multiline maw={320} withArrow>
          <Badge variant="outline" color="gray" c="dark.6" tt="none" radius="sm" tabIndex={0} aria-label={`${rest.length} more tags: ${rest.map((t) => t.name).join(", ")}`}>
            +{rest.length} more
          </Badge>
        </Tooltip>
      )}
    </Group>
  );
}

/** The assets the caller may read, with their tags and the time range of their history. */
export default function AssetsPage() {
  const paging = usePageTokens("assets");
  const query = useListAssetsQuery({ pageSize: PAGE_SIZE, pageToken: paging.pageToken });
  const assets = query.data?.assets ?? [];
  return (
    <>
      <PageHeader title="Data" docTitle="Data">
        <Text c="dimmed" size="sm">
          The assets you may read. Open one to chart its history, see its failures, and export it as CSV or into a
          notebook.
        </Text>
      </PageHeader>
      {query.error ? (
        <ErrorAlert error={asApiError(query.error)} onRetry={() => void query.refetch()} />
      ) : query.isLoading ? (
        <TableSkeleton />
      ) : assets.length === 0 && paging.pageNumber === 1 ? (
        <EmptyState icon={<IconDatabase size={26} />} title="No assets you may read">
          Reading an asset&apos;s history needs a grant. Ask an administrator to add one for you or your role, e.g.{" "}
          <Text span ff="monospace" size="sm">
            mlplane grant add --role data_scientist --assets &apos;pump-*&apos;
          </Text>
          .
        </EmptyState>
      ) : (
        <Paper withBorder radius="md">
          <Table.ScrollContainer minWidth={700}>
            <Table highlightOnHover verticalSpacing="sm" layout="fixed" aria-busy={query.isFetching}>
              <Table.Thead>
                <Table.Tr>
                  <Table.Th w="26%">Asset</Table.Th>
                  <Table.Th>Tags</Table.Th>
                  <Table.Th w={180}>First sample</Table.Th>
                  <Table.Th w={180}>Last sample</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {assets.map((asset) => {
                  const id = asset.assetId ?? "";
                  return (
                    <Table.Tr key={id}>
                      <Table.Td>
                        <Anchor component={Link} to={`/data/${encodeURIComponent(id)}`} fw={600} truncate="end" display="block" title={id}>
                          {id}
                        </Anchor>
                        {asset.displayName && (
                          <Truncated size="xs" c="dimmed">
                            {asset.displayName}
                          </Truncated>
                        )}
                      </Table.Td>
                      <Table.Td>
                        <Tags tags={asset.tags ?? []} />
                      </Table.Td>
                      <Table.Td>
                        <Text size="sm" component="span">
                          {asset.firstTime ? <Time value={asset.firstTime} /> : "No samples"}
                        </Text>
                      </Table.Td>
                      <Table.Td>
                        <Text size="sm" component="span">
                          {asset.lastTime ? <Time value={asset.lastTime} /> : "—"}
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
        label="Assets"
        pageNumber={paging.pageNumber}
        nextPageToken={query.data?.nextPageToken}
        onNext={paging.next}
        onPrevious={paging.previous}
        busy={query.isFetching}
      />
    </>
  );
}
